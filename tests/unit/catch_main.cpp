// The Catch2 runner for the unit tests; each test file is its own translation unit.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
