// The GCRA bucket maths of the limiter, with times as plain numbers: refill, reservations of
// future slots, requests larger than the bucket, reconciliation, resync and 429 resets.
#include <catch2/catch.hpp>

#include "engine/bucket.hpp"

using namespace detour::engine;

namespace {
const Rate k60PerMinuteBurst5{60, 5};  // one a second, five at once
}  // namespace

TEST_CASE("bucket: burst defaults to config, else learned, else one second's worth", "[bucket]") {
  struct Row {
    double per_minute, configured, learned, burst;
  };
  const Row rows[] = {
      {600, 20, 7, 20},  // config wins
      {600, 0, 7, 7},    // else the largest the provider showed
      {600, 0, 0, 10},   // else one second's worth
      {30, 0, 0, 1},     // at least one
      {60, 0, 500, 60},  // a learned burst is never more than a minute
      {60, 0.5, 0, 1},   // nor less than one request
  };
  for (const Row& r : rows) {
    INFO(r.per_minute << " " << r.configured << " " << r.learned);
    CHECK(burst_for(r.per_minute, r.configured, r.learned) == Approx(r.burst));
  }
}

TEST_CASE("bucket: a full bucket lets the burst go at once, then paces evenly", "[bucket]") {
  double tat = 0;  // long ago: full
  const double now = 1'000'000;
  std::vector<double> sent;
  for (int i = 0; i < 8; ++i) {
    const double at = allow_at(tat, k60PerMinuteBurst5, 1, now);
    tat = take(tat, k60PerMinuteBurst5, 1, at);
    sent.push_back(at - now);
  }
  const std::vector<double> expected = {0, 0, 0, 0, 0, 1000, 2000, 3000};
  CHECK(sent == expected);
  CHECK(bucket_level(tat, k60PerMinuteBurst5, now) == Approx(-3));
  CHECK(bucket_level(tat, k60PerMinuteBurst5, now + 8000) == Approx(5));  // full again
}

TEST_CASE("bucket: refill is continuous and capped at the burst", "[bucket]") {
  double tat = 0;
  const double now = 50'000;
  for (int i = 0; i < 5; ++i)
    tat = take(tat, k60PerMinuteBurst5, 1, now);
  CHECK(bucket_level(tat, k60PerMinuteBurst5, now) == Approx(0));
  CHECK(bucket_level(tat, k60PerMinuteBurst5, now + 2500) == Approx(2.5));
  CHECK(bucket_level(tat, k60PerMinuteBurst5, now + 60'000) == Approx(5));
  CHECK(allow_at(tat, k60PerMinuteBurst5, 1, now + 200) == Approx(now + 1000));
  CHECK(allow_at(tat, k60PerMinuteBurst5, 3, now) == Approx(now + 3000));
}

TEST_CASE("bucket: a request larger than the bucket waits for a full one, then goes into debt",
          "[bucket]") {
  const Rate tokens{6000, 100};  // 100 tokens a second, holds 100
  double tat = 0;
  const double now = 10'000;
  tat = take(tat, tokens, 50, now);                   // half full
  const double at = allow_at(tat, tokens, 400, now);  // 4x the bucket
  CHECK(at == Approx(now + 500));                     // when it is full again
  tat = take(tat, tokens, 400, at);
  CHECK(bucket_level(tat, tokens, at) == Approx(-300));  // repaid at the sustained rate
  CHECK(allow_at(tat, tokens, 1, at) == Approx(at + 3010));
}

TEST_CASE("bucket: adjust gives back or charges tokens after the reply's usage", "[bucket]") {
  const Rate tokens{60'000, 1000};  // 1000 a second
  const double now = 0;
  double tat = take(-1e9, tokens, 1000, now);
  CHECK(bucket_level(tat, tokens, now) == Approx(0));
  tat = adjust(tat, tokens, -600);  // estimated 1000, used 400
  CHECK(bucket_level(tat, tokens, now) == Approx(600));
  tat = adjust(tat, tokens, 200);  // used more than thought
  CHECK(bucket_level(tat, tokens, now) == Approx(400));
}

TEST_CASE("bucket: resync from the provider's remaining only makes it emptier", "[bucket]") {
  const double now = 100'000;
  double tat = 0;  // we think it is full
  tat = resync(tat, k60PerMinuteBurst5, 2, now);
  CHECK(bucket_level(tat, k60PerMinuteBurst5, now) == Approx(2));
  // A higher remaining (others' reservations not yet sent) changes nothing.
  CHECK(resync(tat, k60PerMinuteBurst5, 4, now) == Approx(tat));
  CHECK(bucket_level(resync(tat, k60PerMinuteBurst5, 0, now), k60PerMinuteBurst5, now) ==
        Approx(0));
}

TEST_CASE("bucket: after a 429 nothing goes before the reset, then one request", "[bucket]") {
  const double now = 7'000;
  double tat = empty_until(0, k60PerMinuteBurst5, now + 30'000);
  CHECK(allow_at(tat, k60PerMinuteBurst5, 1, now) == Approx(now + 30'000));
  tat = take(tat, k60PerMinuteBurst5, 1, now + 30'000);
  CHECK(allow_at(tat, k60PerMinuteBurst5, 1, now + 30'000) == Approx(now + 31'000));
  // An earlier reset than what we already know keeps the later one.
  CHECK(empty_until(tat, k60PerMinuteBurst5, now) == Approx(tat));
}

TEST_CASE("bucket: no limit means no wait and no state", "[bucket]") {
  const Rate none{};
  CHECK(allow_at(123, none, 1e9, 5) == 5);
  CHECK(take(123, none, 10, 5) == 123);
  CHECK(resync(123, none, 0, 5) == 123);
}
