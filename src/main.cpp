// detour: the command line lives in src/cli, the engine in src/engine.
#include "cli/app.hpp"

int main(int argc, char** argv) {
  return detour::cli::run(argc, argv);
}
