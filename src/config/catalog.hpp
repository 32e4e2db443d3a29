#pragma once
// The built-in model catalog (data/model_catalog.json, README "Model catalog"): context windows,
// output limits and prices of the major providers' current models, filling in what
// [models."provider/model"] leaves out. The config always wins.
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "config/config.hpp"

namespace detour::config {

// The catalog's provider names, and "none" (a provider's `catalog` key turns lookups off).
std::span<const std::string_view> catalog_providers();

// What the catalog knows of models: parsed from the JSON in data/model_catalog.json.
class Catalog {
 public:
  // Throws std::runtime_error naming what is wrong with the text.
  static Catalog parse(std::string_view json_text);
  // The catalog built into detour, parsed on first use.
  static const Catalog& builtin();

  // The entry of "catalog-provider/model", if any.
  const ModelConfig* find(std::string_view catalog_provider, std::string_view model) const;
  const std::string& taken() const { return taken_; }  // when its facts were collected
  std::size_t size() const { return models_.size(); }

 private:
  std::string taken_;
  std::map<std::string, ModelConfig, std::less<>> models_;  // "provider/model"
};

// Which of the catalog's providers a configured provider's models belong to: its `catalog` key;
// else its name, when that is one of the catalog's; else the official API host its base_url
// points at; Azure deployments are looked up as OpenAI models. nullopt: none (local servers,
// gateways, OpenRouter, `catalog = "none"`).
std::optional<std::string> catalog_provider_of(const ProviderConfig& provider);

// `model` with every field it leaves empty taken from `entry`.
ModelConfig with_catalog(ModelConfig model, const ModelConfig& entry);

// What detour knows of a target's model: its [models."provider/model"] entry completed from the
// built-in catalog. `source`, when given, says where that came from ("config", "catalog DATE",
// "config, catalog DATE"; empty: nowhere).
ModelConfig model_facts(const Config& config, const std::string& provider, const std::string& model,
                        std::string* source = nullptr);

}  // namespace detour::config
