package http1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Handler answers one request.
type Handler interface {
	ServeHTTP(ResponseWriter, *Request)
}

// HandlerFunc is a function used as a Handler.
type HandlerFunc func(ResponseWriter, *Request)

// ServeHTTP calls f.
func (f HandlerFunc) ServeHTTP(w ResponseWriter, r *Request) { f(w, r) }

// ResponseWriter is what a handler answers through.
type ResponseWriter interface {
	// Header is the response header, to change before WriteHeader.
	Header() Header
	// WriteHeader sets the status; later calls are ignored.
	WriteHeader(code int)
	// Write adds to the body (status 200 if none was set).
	Write(p []byte) (int, error)
	// Flush sends what was written so far; from the first Flush on the
	// body is chunked. It fails once the peer has gone.
	Flush() error
}

// Request is one parsed request.
type Request struct {
	Method     string
	URL        *url.URL
	Proto      string
	Header     Header
	Body       io.Reader
	RemoteAddr string

	ctx        context.Context
	pathValues map[string]string
}

// Context ends when the handler returns, the server closes or the peer
// hangs up.
func (r *Request) Context() context.Context { return r.ctx }

// PathValue is the value of the route's {name} wildcard ("" if none).
func (r *Request) PathValue(name string) string { return r.pathValues[name] }

// Server serves Handler on listeners.
type Server struct {
	Handler Handler
	// ReadHeaderTimeout bounds reading the request (5s if 0).
	ReadHeaderTimeout time.Duration
	// WriteTimeout, if set, bounds each response from the end of its
	// request; leave it 0 for streams.
	WriteTimeout time.Duration
	// MaxHeaderBytes bounds the request line and header (64 KiB if 0).
	MaxHeaderBytes int
	// MaxBody bounds a request body (1 MiB if 0).
	MaxBody int64
	// BaseContext is every request's parent (context.Background if nil).
	BaseContext func(net.Listener) context.Context
	// ConnContext derives a connection's context (peer credentials).
	ConnContext func(ctx context.Context, c net.Conn) context.Context
	// ErrorLog, if set, hears about handler panics.
	ErrorLog func(msg string)

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	active    sync.WaitGroup
}

// Serve accepts on l until Close or Shutdown; then it returns
// ErrServerClosed. Other accept errors are retried after a pause unless
// the listener itself is gone.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	if s.listeners == nil {
		s.listeners = map[net.Listener]struct{}{}
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	base := context.Background()
	if s.BaseContext != nil {
		base = s.BaseContext(l)
	}
	pause := 5 * time.Millisecond
	for {
		c, err := l.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// EMFILE and the like: wait and try again, as net/http does.
			time.Sleep(pause)
			if pause < time.Second {
				pause *= 2
			}
			continue
		}
		pause = 5 * time.Millisecond
		if !s.track(c) {
			c.Close()
			return ErrServerClosed
		}
		go s.serveConn(base, c)
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.conns == nil {
		s.conns = map[net.Conn]struct{}{}
	}
	s.conns[c] = struct{}{}
	s.active.Add(1)
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.active.Done()
}

// closeListeners stops accepting; it returns the connections still open.
func (s *Server) closeListeners() []net.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
	s.listeners = nil
	var cs []net.Conn
	for c := range s.conns {
		cs = append(cs, c)
	}
	return cs
}

// Close stops accepting and closes every connection at once.
func (s *Server) Close() error {
	for _, c := range s.closeListeners() {
		c.Close()
	}
	return nil
}

// Shutdown stops accepting and waits for the requests in flight to end;
// when ctx ends first it closes them and returns ctx's error. Streams do
// not end by themselves: end their context (BaseContext) first.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closeListeners()
	done := make(chan struct{})
	go func() { s.active.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.Close()
		return ctx.Err()
	}
}

func (s *Server) limits() (time.Duration, int, int64) {
	rt, mh, mb := s.ReadHeaderTimeout, s.MaxHeaderBytes, s.MaxBody
	if rt <= 0 {
		rt = 5 * time.Second
	}
	if mh <= 0 {
		mh = 64 << 10
	}
	if mb <= 0 {
		mb = 1 << 20
	}
	return rt, mh, mb
}

// errReply is a request that is answered with an error before any
// handler sees it.
type errReply struct {
	code int
	msg  string
}

func (e *errReply) Error() string { return e.msg }

// limitedReader is io.LimitedReader whose exhaustion is told apart from
// the peer's EOF.
type limitedReader struct {
	r io.Reader
	n int64
}

var errTooLong = errors.New("http1: too long")

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errTooLong
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

func (s *Server) serveConn(base context.Context, c net.Conn) {
	defer s.untrack(c)
	defer c.Close()
	readTimeout, maxHeader, maxBody := s.limits()
	c.SetReadDeadline(time.Now().Add(readTimeout))
	lim := &limitedReader{r: c, n: int64(maxHeader)}
	br := bufio.NewReaderSize(lim, 4096)
	bw := bufio.NewWriterSize(c, 4096)
	req, err := readRequest(br, lim, maxBody, bw)
	if err != nil {
		var e *errReply
		if errors.As(err, &e) {
			c.SetWriteDeadline(time.Now().Add(readTimeout))
			body := e.msg + "\n"
			fmt.Fprintf(bw, "%sContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
				statusLine(e.code), len(body), body)
			bw.Flush()
		}
		return
	}
	c.SetReadDeadline(time.Time{})
	if s.WriteTimeout > 0 {
		c.SetWriteDeadline(time.Now().Add(s.WriteTimeout))
	}
	ctx := base
	if s.ConnContext != nil {
		ctx = s.ConnContext(ctx, c)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req.ctx = ctx
	req.RemoteAddr = c.RemoteAddr().String()
	// The request was read whole: anything the peer does now (a byte, EOF,
	// a reset) means it is done with us.
	lim.n = 1 << 62
	go func() {
		var b [1]byte
		br.Read(b[:])
		cancel()
	}()
	w := &response{bw: bw, head: req.Method == MethodHead, header: Header{}}
	s.run(w, req)
	w.finish()
}

// run calls the handler; a panic is logged and, if nothing was sent yet,
// answered with 500.
func (s *Server) run(w *response, r *Request) {
	defer func() {
		if p := recover(); p != nil {
			if s.ErrorLog != nil {
				s.ErrorLog(fmt.Sprintf("http1: panic serving %s %s: %v", r.Method, r.URL.Path, p))
			}
			if !w.headSent {
				w.reset()
				Error(w, "internal error", StatusInternalServerError)
			} else {
				w.broken = true
			}
		}
	}()
	s.Handler.ServeHTTP(w, r)
}

func readRequest(br *bufio.Reader, lim *limitedReader, maxBody int64, bw *bufio.Writer) (*Request, error) {
	raw, err := br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, errTooLong) || errors.Is(err, bufio.ErrBufferFull) {
			return nil, &errReply{StatusURITooLong, "request line too long"}
		}
		return nil, err // the peer went away: nothing to answer
	}
	line := strings.TrimRight(string(raw), "\r\n")
	tp := textproto.NewReader(br)
	method, rest, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || method == "" || target == "" {
		return nil, &errReply{StatusBadRequest, "malformed request line"}
	}
	if proto != "HTTP/1.1" && proto != "HTTP/1.0" {
		return nil, &errReply{StatusVersionNotSupported, "only HTTP/1.0 and HTTP/1.1 are spoken here"}
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return nil, &errReply{StatusBadRequest, "bad request target: " + err.Error()}
	}
	h, err := tp.ReadMIMEHeader()
	if err != nil {
		if errors.Is(err, errTooLong) {
			return nil, &errReply{StatusHeaderFieldsTooLarge, "request header too large"}
		}
		var pe textproto.ProtocolError
		if errors.As(err, &pe) {
			return nil, &errReply{StatusBadRequest, "malformed header: " + err.Error()}
		}
		return nil, err // a timeout, or the peer went away
	}
	r := &Request{Method: method, URL: u, Proto: proto, Header: h}
	if te := h.Get("Transfer-Encoding"); te != "" {
		return nil, &errReply{StatusLengthRequired, "send the body with a Content-Length"}
	}
	var n int64
	if cl := h.Get("Content-Length"); cl != "" {
		n, err = strconv.ParseInt(cl, 10, 64)
		if err != nil || n < 0 || len(h.Values("Content-Length")) > 1 {
			return nil, &errReply{StatusBadRequest, "bad Content-Length"}
		}
		if n > maxBody {
			return nil, &errReply{StatusRequestEntityTooLarge, fmt.Sprintf("body of %d bytes; at most %d", n, maxBody)}
		}
	}
	if n > 0 && strings.EqualFold(h.Get("Expect"), "100-continue") {
		bw.WriteString(statusLine(StatusContinue) + "\r\n")
		if err := bw.Flush(); err != nil {
			return nil, err
		}
	}
	lim.n = n + int64(br.Buffered())
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		return nil, err
	}
	r.Body = bytes.NewReader(body)
	return r, nil
}

// response buffers the body until the handler returns (Content-Length)
// or flushes (chunked from then on).
type response struct {
	bw       *bufio.Writer
	head     bool // HEAD: no body goes out
	header   Header
	code     int
	buf      []byte
	headSent bool
	chunked  bool
	broken   bool // a write failed or a panic cut the body short
	err      error
}

func (w *response) Header() Header { return w.header }

func (w *response) WriteHeader(code int) {
	if w.code != 0 {
		return
	}
	if code < 100 || code > 999 {
		code = StatusInternalServerError
	}
	w.code = code
}

func (w *response) reset() {
	w.header, w.code, w.buf = Header{}, 0, nil
}

func (w *response) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.WriteHeader(StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if !bodyAllowed(w.code) {
		return 0, errors.New("http1: this status carries no body")
	}
	if w.head {
		w.buf = append(w.buf, p...) // counted for Content-Length only
		return len(p), nil
	}
	if !w.chunked {
		w.buf = append(w.buf, p...)
		return len(p), nil
	}
	if len(p) == 0 {
		return 0, nil
	}
	fmt.Fprintf(w.bw, "%x\r\n", len(p))
	w.bw.Write(p)
	if _, err := w.bw.WriteString("\r\n"); err != nil {
		w.fail(err)
		return 0, err
	}
	return len(p), nil
}

func (w *response) fail(err error) {
	if w.err == nil {
		w.err = err
		w.broken = true
	}
}

func (w *response) sendHead(length int, chunked bool) {
	h := w.header
	h.Set("Connection", "close")
	if chunked {
		h.Del("Content-Length")
		h.Set("Transfer-Encoding", "chunked")
	} else if bodyAllowed(w.code) {
		h.Set("Content-Length", strconv.Itoa(length))
	}
	if bodyAllowed(w.code) && h.Get("Content-Type") == "" && length > 0 {
		h.Set("Content-Type", "text/plain; charset=utf-8")
	}
	w.bw.WriteString(statusLine(w.code))
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range h[k] {
			// A value with a line break would split the header.
			v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
			w.bw.WriteString(k + ": " + v + "\r\n")
		}
	}
	w.bw.WriteString("\r\n")
	w.headSent = true
	w.chunked = chunked
}

func (w *response) Flush() error {
	if w.err != nil {
		return w.err
	}
	if w.code == 0 {
		w.WriteHeader(StatusOK)
	}
	if !w.headSent {
		chunked := !w.head && bodyAllowed(w.code)
		w.sendHead(0, chunked)
		pending := w.buf
		w.buf = nil
		if chunked && len(pending) > 0 {
			if _, err := w.Write(pending); err != nil {
				return err
			}
		}
	}
	if err := w.bw.Flush(); err != nil {
		w.fail(err)
		return err
	}
	return nil
}

// finish sends what the handler left.
func (w *response) finish() {
	if w.err != nil {
		return
	}
	if w.code == 0 {
		w.WriteHeader(StatusOK)
	}
	if !w.headSent {
		w.sendHead(len(w.buf), false)
		if !w.head {
			w.bw.Write(w.buf)
		}
	} else if w.chunked && !w.broken {
		// A broken chunked body is left without its last chunk, so the
		// client sees it was cut short.
		w.bw.WriteString("0\r\n\r\n")
	}
	w.bw.Flush()
}
