#pragma once
// Socket-level tricks httplib has no API for. httplib never hands out its file descriptors,
// so these find them by scanning /proc/self/fd (Linux) and matching addresses.
#include <string>

namespace detour::mock {

// The connected socket whose peer is remote_addr:remote_port and whose local port is
// local_port (a request's connection), or -1.
int connection_fd(const std::string& remote_addr, int remote_port, int local_port);

// Makes the next close() of fd send RST instead of FIN (zero linger).
void arm_reset(int fd);

// Raises the accept backlog of the socket listening on `port`: httplib listens with a tiny
// one, and 64 clients connecting at once would overflow it and each pay a 1 s SYN retransmit.
void raise_backlog(int port);

// Shuts down every connected socket of the process, so workers idling in keep-alive waits or
// writing slow streams notice at once and a stopping server exits without delay.
void shutdown_connections();

}  // namespace detour::mock
