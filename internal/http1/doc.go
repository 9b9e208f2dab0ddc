// Package http1 is the small HTTP/1.1 that corral's API socket and its
// metrics listener speak, and the client its CLI uses.
//
// # Why not net/http
//
// net/http brings TLS, HTTP/2, proxies, cookies and MIME sniffing into a
// PID 1 that serves one local socket: 5 MB more binary and the pages its
// initialisation touches, in every second of the appliance's life. corral
// needs a fraction of it, so this package implements that fraction:
//
//   - one request per connection (every response says Connection: close);
//   - bodies read whole up front, bounded by Server.MaxBody (Content-Length
//     only; a chunked request body is refused with 411);
//   - responses sent with Content-Length, or chunked from the first Flush
//     (log and event streams);
//   - a request's context ends when the handler returns, when the server
//     closes, or when the peer hangs up (a byte or EOF read after the
//     request), which is what ends a `corral logs -f`;
//   - "METHOD /a/{name}/b" routes: a literal segment beats a wildcard, GET
//     also serves HEAD, a path known under other methods answers 405;
//   - a handler's panic is recovered (500 if nothing was sent yet): PID 1
//     never dies of a request.
//
// The names follow net/http (Handler, ResponseWriter, Request.PathValue,
// Server.Shutdown) so that reading the handlers needs no new vocabulary.
// The tests hold this package to net/http: its client talks to our server
// and our client to its server.
//
// # Client
//
// Client.Do sends one request over a connection made by Client.Dial and
// returns the response with a streaming body; closing the body (or the
// context ending) closes the connection.
package http1
