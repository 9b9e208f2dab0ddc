package http1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serve starts s on a fresh unix socket; it is closed when the test ends.
func serve(t *testing.T, s *Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return path
}

// stdClient is net/http's client on the socket: the reference peer.
func stdClient(path string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
}

func ourClient(path string) *Client {
	return &Client{Timeout: 10 * time.Second, Dial: func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
}

func testMux(t *testing.T, release <-chan struct{}, ended chan<- error) *ServeMux {
	m := NewServeMux()
	m.HandleFunc("GET /v1/services", func(w ResponseWriter, r *Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"q":%q}`, r.URL.Query()["svc"])
	})
	m.HandleFunc("GET /v1/services/{name}", func(w ResponseWriter, r *Request) {
		fmt.Fprintf(w, "one %s", r.PathValue("name"))
	})
	m.HandleFunc("POST /v1/services/{name}/kill", func(w ResponseWriter, r *Request) {
		w.WriteHeader(StatusAccepted)
		fmt.Fprintf(w, "kill %s", r.PathValue("name"))
	})
	m.HandleFunc("POST /v1/services/{name}/{action}", func(w ResponseWriter, r *Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s body=%q", r.PathValue("action"), r.PathValue("name"), b)
	})
	m.HandleFunc("GET /stream", func(w ResponseWriter, r *Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		fmt.Fprintln(w, "first")
		if err := w.Flush(); err != nil {
			ended <- err
			return
		}
		select {
		case <-release:
			fmt.Fprintln(w, "second")
			ended <- nil
		case <-r.Context().Done():
			ended <- r.Context().Err()
		}
	})
	m.HandleFunc("GET /panic", func(w ResponseWriter, r *Request) { panic("boom") })
	m.HandleFunc("GET /empty", func(w ResponseWriter, r *Request) { w.WriteHeader(StatusNoContent) })
	return m
}

func get(t *testing.T, c *http.Client, method, url, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://corral"+url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: body: %v", method, url, err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// TestServerWithNetHTTPClient holds the server to net/http's client.
func TestServerWithNetHTTPClient(t *testing.T) {
	release := make(chan struct{})
	ended := make(chan error, 1)
	var logged []string
	s := &Server{Handler: testMux(t, release, ended), ErrorLog: func(m string) { logged = append(logged, m) }}
	c := stdClient(serve(t, s))

	cases := []struct {
		method, url, body string
		code              int
		want              string
	}{
		{"GET", "/v1/services?svc=a&svc=b%20c", "", 200, `{"q":["a" "b c"]}`},
		{"GET", "/v1/services/web", "", 200, "one web"},
		{"GET", "/v1/services/a%2Fb", "", 200, "one a/b"}, // an escaped slash stays in the segment
		{"POST", "/v1/services/web/kill", "", 202, "kill web"},
		{"POST", "/v1/services/web/restart", "xyz", 200, `restart web body="xyz"`},
		{"GET", "/v1/nothing", "", 404, "404 page not found\n"},
		{"GET", "/v1/services/", "", 404, "404 page not found\n"}, // an empty wildcard is no match
		{"POST", "/v1/services", "", 405, "method not allowed\n"},
		{"GET", "/panic", "", 500, "internal error\n"},
		{"GET", "/empty", "", 204, ""},
	}
	for _, tc := range cases {
		code, h, body := get(t, c, tc.method, tc.url, tc.body)
		if code != tc.code || body != tc.want {
			t.Errorf("%s %s = %d %q, want %d %q", tc.method, tc.url, code, body, tc.code, tc.want)
		}
		if code == 405 && h.Get("Allow") != "GET" {
			t.Errorf("405 Allow = %q, want GET", h.Get("Allow"))
		}
	}
	if len(logged) != 1 || !strings.Contains(logged[0], "boom") {
		t.Errorf("the panic was logged as %q", logged)
	}
	// HEAD: the length of the GET, no body.
	req, _ := http.NewRequest("HEAD", "http://corral/v1/services/web", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ContentLength != int64(len("one web")) {
		t.Errorf("HEAD = %d, length %d", resp.StatusCode, resp.ContentLength)
	}

	// A stream: the first line arrives while the handler still waits.
	resp, err = c.Get("http://corral/stream")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "first\n" {
		t.Fatalf("first streamed line = %q, %v", line, err)
	}
	if resp.TransferEncoding == nil || resp.TransferEncoding[0] != "chunked" {
		t.Errorf("stream transfer encoding = %v, want chunked", resp.TransferEncoding)
	}
	close(release)
	rest, err := io.ReadAll(br)
	resp.Body.Close()
	if err != nil || string(rest) != "second\n" {
		t.Errorf("rest of the stream = %q, %v", rest, err)
	}
	if err := <-ended; err != nil {
		t.Errorf("stream handler: %v", err)
	}
}

// TestPeerHangupEndsContext: a client that goes away ends the handler's
// context (what ends `corral logs -f`).
func TestPeerHangupEndsContext(t *testing.T) {
	ended := make(chan error, 1)
	s := &Server{Handler: testMux(t, make(chan struct{}), ended)}
	path := serve(t, s)
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(conn)
	status, _ := br.ReadString('\n')
	if !strings.HasPrefix(status, "HTTP/1.1 200 OK") {
		t.Fatalf("status %q", status)
	}
	conn.Close()
	select {
	case err := <-ended:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("handler ended with %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the handler's context did not end after the peer hung up")
	}
}

// TestBadRequests: malformed input gets a clear status, never a handler.
func TestBadRequests(t *testing.T) {
	m := NewServeMux()
	m.HandleFunc("/", func(w ResponseWriter, r *Request) { t.Errorf("handler called for %s %s", r.Method, r.URL) })
	m.HandleFunc("POST /x", func(w ResponseWriter, r *Request) { t.Errorf("handler called for %s %s", r.Method, r.URL) })
	s := &Server{Handler: m, MaxHeaderBytes: 1024, MaxBody: 10}
	path := serve(t, s)
	cases := []struct{ raw, want string }{
		{"GARBAGE\r\n\r\n", "400"},
		{"GET / HTTP/2.0\r\n\r\n", "505"},
		{"GET /" + strings.Repeat("a", 2000) + " HTTP/1.1\r\n\r\n", "414"},
		{"GET / HTTP/1.1\r\nX: " + strings.Repeat("a", 2000) + "\r\n\r\n", "431"},
		{"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "411"},
		{"POST /x HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world", "413"},
		{"POST /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "400"},
		{"GET / HTTP/1.1\r\nno colon here\r\n\r\n", "400"},
	}
	for _, tc := range cases {
		conn, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(conn, tc.raw)
		status, err := bufio.NewReader(conn).ReadString('\n')
		conn.Close()
		if !strings.HasPrefix(status, "HTTP/1.1 "+tc.want+" ") {
			t.Errorf("%.40q: status %q (%v), want %s", tc.raw, status, err, tc.want)
		}
	}
}

// TestSlowClientTimesOut: a peer that never finishes its request is cut
// off after ReadHeaderTimeout.
func TestSlowClientTimesOut(t *testing.T) {
	s := &Server{Handler: NewServeMux(), ReadHeaderTimeout: 100 * time.Millisecond}
	conn, err := net.Dial("unix", serve(t, s))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET / HTTP/1.1\r\n")
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := conn.Read(make([]byte, 1))
	if n != 0 || err != io.EOF {
		t.Errorf("read after the timeout = %d, %v; want the server to have closed (EOF)", n, err)
	}
}

// TestShutdownWaits: Shutdown waits for the request in flight, which
// still gets its answer; new connections are refused.
func TestShutdownWaits(t *testing.T) {
	release := make(chan struct{})
	ended := make(chan error, 1)
	s := &Server{Handler: testMux(t, release, ended)}
	path := serve(t, s)
	resp, err := stdClient(path).Get("http://corral/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(context.Background()) }()
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) with a request in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "first\nsecond\n" {
		t.Errorf("the request in flight got %q", b)
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if _, err := net.Dial("unix", path); err == nil {
		t.Error("the socket still accepts after Shutdown")
	}
	// Shutdown with a stream that never ends: ctx decides.
	s2 := &Server{Handler: testMux(t, make(chan struct{}), make(chan error, 1))}
	resp2, err := stdClient(serve(t, s2)).Get("http://corral/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s2.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown with an endless stream = %v, want DeadlineExceeded", err)
	}
}

// TestClientWithNetHTTPServer holds the client to net/http's server.
func TestClientWithNetHTTPServer(t *testing.T) {
	release := make(chan struct{})
	m := http.NewServeMux()
	m.HandleFunc("GET /plain", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Got", r.Method+" "+r.URL.RequestURI())
		io.WriteString(w, "hello")
	})
	m.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusConflict)
		w.Write(b)
	})
	m.HandleFunc("GET /stream", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "a\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
			io.WriteString(w, "b\n")
		case <-r.Context().Done():
		}
	})
	m.HandleFunc("GET /cut", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "partial\n")
		w.(http.Flusher).Flush()
		conn, _, _ := http.NewResponseController(w).Hijack()
		conn.Close()
	})
	m.HandleFunc("GET /none", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	path := filepath.Join(t.TempDir(), "std.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: m}
	go srv.Serve(ln)
	defer srv.Close()
	c := ourClient(path)
	ctx := context.Background()

	read := func(method, target string, body []byte) (*Response, string, error) {
		resp, err := c.Do(ctx, method, target, body)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, string(b), err
	}
	resp, body, err := read("GET", "/plain?x=1", nil)
	if err != nil || resp.StatusCode != 200 || body != "hello" || resp.Header.Get("X-Got") != "GET /plain?x=1" {
		t.Errorf("GET /plain = %v %q %v", resp, body, err)
	}
	resp, body, err = read("HEAD", "/plain", nil)
	if err != nil || resp.StatusCode != 200 || body != "" {
		t.Errorf("HEAD /plain = %v %q %v", resp, body, err)
	}
	resp, body, err = read("POST", "/echo", []byte("payload"))
	if err != nil || resp.StatusCode != 409 || resp.Status != "409 Conflict" || body != "payload" {
		t.Errorf("POST /echo = %v %q %v", resp, body, err)
	}
	resp, body, err = read("GET", "/none", nil)
	if err != nil || resp.StatusCode != 204 || body != "" {
		t.Errorf("GET /none = %v %q %v", resp, body, err)
	}
	// A body cut off before its last chunk is an error, not a short read.
	_, body, err = read("GET", "/cut", nil)
	if !errors.Is(err, io.ErrUnexpectedEOF) || body != "partial\n" {
		t.Errorf("GET /cut = %q, %v; want the partial line and ErrUnexpectedEOF", body, err)
	}
	// A stream: the first line before the server is done, then the rest.
	resp, err = c.Do(ctx, "GET", "/stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	if l, err := br.ReadString('\n'); l != "a\n" || err != nil {
		t.Errorf("first line %q %v", l, err)
	}
	close(release)
	if rest, err := io.ReadAll(br); string(rest) != "b\n" || err != nil {
		t.Errorf("rest %q %v", rest, err)
	}
	resp.Body.Close()

	// Cancelling the context ends a read in progress with its error.
	cctx, cancel := context.WithCancel(ctx)
	release2 := make(chan struct{})
	defer close(release2)
	m.HandleFunc("GET /forever", func(w http.ResponseWriter, r *http.Request) {
		w.(http.Flusher).Flush()
		select {
		case <-release2:
		case <-r.Context().Done():
		}
	})
	resp, err = c.Do(cctx, "GET", "/forever", nil)
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !errors.Is(err, context.Canceled) {
		t.Errorf("read after cancel = %v, want context.Canceled", err)
	}
	// The client's Timeout bounds the body too.
	tc := ourClient(path)
	tc.Timeout = 50 * time.Millisecond
	resp, err = tc.Do(ctx, "GET", "/forever", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("read past the timeout = %v, want DeadlineExceeded", err)
	}
	if _, err := c.Do(ctx, "GET", "no-slash", nil); err == nil {
		t.Error("a target without / was sent")
	}
}

// TestOurClientOurServer: the pair corral actually runs, streaming.
func TestOurClientOurServer(t *testing.T) {
	release := make(chan struct{})
	ended := make(chan error, 1)
	c := ourClient(serve(t, &Server{Handler: testMux(t, release, ended)}))
	resp, err := c.Do(context.Background(), "GET", "/stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	if l, _ := br.ReadString('\n'); l != "first\n" {
		t.Errorf("first line %q", l)
	}
	close(release)
	if rest, err := io.ReadAll(br); string(rest) != "second\n" || err != nil {
		t.Errorf("rest %q %v", rest, err)
	}
	resp.Body.Close()
	resp, err = c.Do(context.Background(), "POST", "/v1/services/x/start", []byte("b"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != `start x body="b"` {
		t.Errorf("POST = %q", b)
	}
}

// TestCurl: curl --unix-socket, as the README shows it.
func TestCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("no curl")
	}
	release := make(chan struct{})
	close(release)
	path := serve(t, &Server{Handler: testMux(t, release, make(chan error, 1))})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"http://x/v1/services/web"}, "one web"},
		{[]string{"-X", "POST", "http://x/v1/services/web/kill"}, "kill web"},
		{[]string{"-d", "data", "http://x/v1/services/web/stop"}, `stop web body="data"`},
		{[]string{"-N", "http://x/stream"}, "first\nsecond\n"},
		{[]string{"-o", "/dev/null", "-w", "%{http_code}", "http://x/nope"}, "404"},
	} {
		out, err := exec.Command(curl, append([]string{"-sS", "--unix-socket", path}, tc.args...)...).CombinedOutput()
		if err != nil || string(out) != tc.want {
			t.Errorf("curl %v = %q, %v; want %q", tc.args, out, err, tc.want)
		}
	}
}

func TestMuxPatternsPanicAtSetUp(t *testing.T) {
	for _, p := range []string{"GET nope", "GET /a/{", "GET /a/{}"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("pattern %q was accepted", p)
				}
			}()
			NewServeMux().HandleFunc(p, func(ResponseWriter, *Request) {})
		}()
	}
	m := NewServeMux()
	m.HandleFunc("GET /a/{x}", func(ResponseWriter, *Request) {})
	defer func() {
		if recover() == nil {
			t.Error("the same route twice was accepted")
		}
	}()
	m.HandleFunc("GET /a/{y}", func(ResponseWriter, *Request) {})
}
