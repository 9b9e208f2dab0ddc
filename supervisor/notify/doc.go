// Package notify receives sd_notify datagrams for one service.
//
// # Socket
//
// Each service gets its own unix datagram socket, bound (with SO_PASSCRED)
// before the service exists, in a directory that the container sees at
// /run/notify. NOTIFY_SOCKET points there. Because the socket is per
// service, a datagram is attributed to the service even when its sender
// has already exited.
//
// # What counts
//
// One datagram per read. Truncated, empty, non-UTF-8 and credential-less
// datagrams are dropped and counted; passed file descriptors are always
// closed. The caller decides whether the sender (a pid in the supervisor's
// pid namespace) belongs to the service.
//
// # Parsing
//
// Parse is pure: newline-separated KEY=VALUE assignments, as sd_notify(3)
// defines them. Only the literal READY=1 means ready; unknown keys are
// kept in Fields and otherwise ignored.
package notify
