// The Catch2 runner for the integration tests (real binaries over loopback HTTP).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
