#pragma once
// The rate-limit bucket maths (docs/architecture.md, "The limiter"), pure: times are wall-clock
// milliseconds passed in, never read.
//
// The bucket is GCRA (the "generic cell rate algorithm"): a token bucket stored as one number,
// its theoretical arrival time `tat` -- the moment the bucket will be full again. Each unit
// (a request, a token) moves `tat` one emission interval (60 000 ms / per_minute) later;
// a request may go once `tat - cost*interval` is no more than `burst*interval` ahead of now.
// We chose it over a level-plus-timestamp bucket because a reservation of a FUTURE slot is the
// same single write: concurrent detour processes atomically take consecutive slots from the
// shared state and each sleeps until its own, with no polling and no thundering herd when a
// slot frees. It also makes "the bucket is empty until the server's reset" one assignment.
namespace detour::engine {

struct Rate {
  double per_minute = 0;  // sustained rate; <= 0: no limit
  double burst = 1;       // units the bucket holds when full (at least 1)

  bool limited() const { return per_minute > 0; }
  double interval_ms() const { return 60'000.0 / per_minute; }
};

// The burst of a rate: from config when given, else the largest the provider has shown, else
// one second's worth (at least 1).
double burst_for(double per_minute, double configured, double learned);

// Units the bucket holds at `now` (may be negative after a request larger than the bucket,
// or fractional); `burst` when it is full.
double bucket_level(double tat, const Rate& rate, double now);

// The earliest time at or after `now` that a request costing `cost` units may go. A request
// larger than the whole bucket waits for a full bucket and then drives it negative, so big
// requests are paced, never starved.
double allow_at(double tat, const Rate& rate, double cost, double now);

// The bucket after a request of `cost` units sent at `at` (the time allow_at gave, or later).
double take(double tat, const Rate& rate, double cost, double at);

// Charges `delta` more units (negative: gives them back), e.g. when the reply's usage shows
// how many tokens a request really used.
double adjust(double tat, const Rate& rate, double delta);

// Resynchronises with what the provider says remains at `now`. Only ever makes the bucket
// emptier: reservations other processes hold but have not sent yet are not in the provider's
// count, so a higher `remaining` than ours is no reason to send more.
double resync(double tat, const Rate& rate, double remaining, double now);

// After a 429 whose hint says "not before `until`": the bucket is empty up to then, and one
// request may go at `until`.
double empty_until(double tat, const Rate& rate, double until);

}  // namespace detour::engine
