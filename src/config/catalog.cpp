#include "config/catalog.hpp"

#include <cctype>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace detour::config {

// data/model_catalog.json, embedded by CMake (build/generated/catalog_data.cpp).
extern const char kModelCatalogJson[];

namespace {

constexpr std::string_view kCatalogProviders[] = {"openai",  "anthropic", "gemini", "deepseek",
                                                  "mistral", "groq",      "none"};

// The official API hosts: a provider of any name pointed at one serves that vendor's models.
struct Host {
  std::string_view host;
  std::string_view provider;
};
constexpr Host kHosts[] = {{"api.openai.com", "openai"},
                           {"api.anthropic.com", "anthropic"},
                           {"generativelanguage.googleapis.com", "gemini"},
                           {"api.deepseek.com", "deepseek"},
                           {"api.mistral.ai", "mistral"},
                           {"api.groq.com", "groq"}};

std::string host_of(std::string_view url) {
  const std::size_t scheme = url.find("://");
  if (scheme != std::string_view::npos) url.remove_prefix(scheme + 3);
  url = url.substr(0, url.find_first_of("/?#"));
  if (const std::size_t at = url.rfind('@'); at != std::string_view::npos)
    url.remove_prefix(at + 1);
  url = url.substr(0, url.find(':'));
  std::string host(url);
  for (char& c : host)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return host;
}

std::optional<double> positive_number(const nlohmann::json& entry, const char* key,
                                      const std::string& where) {
  const auto it = entry.find(key);
  if (it == entry.end()) return std::nullopt;
  if (!it->is_number() || it->get<double>() < 0) {
    throw std::runtime_error(where + "." + key + ": expected a number of 0 or more");
  }
  return it->get<double>();
}

}  // namespace

std::span<const std::string_view> catalog_providers() {
  return kCatalogProviders;
}

Catalog Catalog::parse(std::string_view json_text) {
  const auto doc = nlohmann::json::parse(json_text.begin(), json_text.end(), nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) throw std::runtime_error("not a JSON object");
  Catalog catalog;
  if (const auto taken = doc.find("taken"); taken != doc.end() && taken->is_string()) {
    catalog.taken_ = taken->get<std::string>();
  }
  const auto models = doc.find("models");
  if (models == doc.end() || !models->is_object()) throw std::runtime_error("no \"models\" object");
  for (const auto& [name, entry] : models->items()) {
    const std::string where = "models." + name;
    const std::size_t slash = name.find('/');
    if (slash == std::string::npos || slash == 0 || slash + 1 == name.size()) {
      throw std::runtime_error(where + ": expected \"provider/model\"");
    }
    if (!entry.is_object()) throw std::runtime_error(where + ": expected an object");
    ModelConfig model;
    if (auto v = positive_number(entry, "context_window", where))
      model.context_window = static_cast<int64_t>(*v);
    if (auto v = positive_number(entry, "max_output_tokens", where))
      model.max_output_tokens = static_cast<int64_t>(*v);
    model.input_cost = positive_number(entry, "input_cost", where);
    model.output_cost = positive_number(entry, "output_cost", where);
    model.cached_input_cost = positive_number(entry, "cached_input_cost", where);
    catalog.models_.emplace(name, model);
  }
  return catalog;
}

const Catalog& Catalog::builtin() {
  // A catalog that does not parse is a build defect (a test parses it), not a user's problem:
  // detour then simply knows no model.
  static const Catalog catalog = [] {
    try {
      return parse(kModelCatalogJson);
    } catch (const std::exception&) {
      return Catalog();
    }
  }();
  return catalog;
}

const ModelConfig* Catalog::find(std::string_view catalog_provider, std::string_view model) const {
  std::string key(catalog_provider);
  key += '/';
  key += model;
  const auto it = models_.find(key);
  return it == models_.end() ? nullptr : &it->second;
}

std::optional<std::string> catalog_provider_of(const ProviderConfig& provider) {
  if (!provider.catalog.empty()) {
    if (provider.catalog == "none") return std::nullopt;
    return provider.catalog;
  }
  if (provider.protocol == "azure") return "openai";
  for (auto name : kCatalogProviders) {
    if (name != "none" && name == provider.name) return std::string(name);
  }
  const std::string host = host_of(provider.base_url);
  for (const auto& known : kHosts) {
    if (known.host == host) return std::string(known.provider);
  }
  return std::nullopt;
}

ModelConfig with_catalog(ModelConfig model, const ModelConfig& entry) {
  if (!model.context_window) model.context_window = entry.context_window;
  if (!model.max_output_tokens) model.max_output_tokens = entry.max_output_tokens;
  // Prices go together: a config that states one price has stated what this model costs it.
  if (!model.input_cost && !model.output_cost) {
    model.input_cost = entry.input_cost;
    model.output_cost = entry.output_cost;
    if (!model.cached_input_cost) model.cached_input_cost = entry.cached_input_cost;
  }
  return model;
}

ModelConfig model_facts(const Config& config, const std::string& provider, const std::string& model,
                        std::string* source) {
  ModelConfig facts;
  std::string from;
  if (auto it = config.models.find(provider + "/" + model); it != config.models.end()) {
    facts = it->second;
    from = "config";
  }
  if (auto p = config.providers.find(provider); p != config.providers.end()) {
    if (auto catalog = catalog_provider_of(p->second)) {
      if (const ModelConfig* entry = Catalog::builtin().find(*catalog, model)) {
        facts = with_catalog(std::move(facts), *entry);
        from += (from.empty() ? "catalog " : ", catalog ") + Catalog::builtin().taken();
      }
    }
  }
  if (source) *source = std::move(from);
  return facts;
}

}  // namespace detour::config
