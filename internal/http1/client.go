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
	"strconv"
	"strings"
	"time"
)

// Client sends one request per connection.
type Client struct {
	// Dial makes the connection (a unix socket, usually).
	Dial func(ctx context.Context) (net.Conn, error)
	// Host is the Host header ("localhost" if empty).
	Host string
	// Timeout, if set, bounds the whole exchange, reading the body
	// included.
	Timeout time.Duration
}

// Response is an answer whose Body streams from the connection.
type Response struct {
	StatusCode int
	Status     string // "404 Not Found"
	Proto      string
	Header     Header
	// Body must be closed; that closes the connection.
	Body io.ReadCloser
}

// Do sends method target (a path with its query) with body (may be nil).
func (c *Client) Do(ctx context.Context, method, target string, body []byte) (*Response, error) {
	if strings.ContainsAny(method+target, " \r\n") || !strings.HasPrefix(target, "/") {
		return nil, fmt.Errorf("http1: bad request %q %q", method, target)
	}
	cancel := context.CancelFunc(func() {})
	if c.Timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
	}
	conn, err := c.Dial(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	end := func() {
		stop()
		conn.Close()
		cancel()
	}
	fail := func(err error) (*Response, error) {
		end()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	host := c.Host
	if host == "" {
		host = "localhost"
	}
	var req bytes.Buffer
	fmt.Fprintf(&req, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: corral\r\nConnection: close\r\n", method, target, host)
	if body != nil || method == MethodPost {
		fmt.Fprintf(&req, "Content-Length: %d\r\n", len(body))
	}
	req.WriteString("\r\n")
	req.Write(body)
	if _, err := conn.Write(req.Bytes()); err != nil {
		return fail(fmt.Errorf("send %s %s: %w", method, target, err))
	}
	br := bufio.NewReader(conn)
	resp, err := readResponse(br, method)
	if err != nil {
		return fail(fmt.Errorf("read the answer to %s %s: %w", method, target, err))
	}
	resp.Body = &streamBody{r: resp.Body, ctx: ctx, end: end}
	return resp, nil
}

func readResponse(br *bufio.Reader, method string) (*Response, error) {
	tp := textproto.NewReader(br)
	for {
		line, err := tp.ReadLine()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		proto, status, ok := strings.Cut(line, " ")
		code, err := strconv.Atoi(strings.SplitN(status, " ", 2)[0])
		if !ok || !strings.HasPrefix(proto, "HTTP/1.") || err != nil || code < 100 || code > 999 {
			return nil, fmt.Errorf("malformed status line %q", line)
		}
		h, err := tp.ReadMIMEHeader()
		if err != nil {
			return nil, fmt.Errorf("malformed header: %w", err)
		}
		if code < 200 {
			continue // 100 Continue and friends
		}
		r := &Response{StatusCode: code, Status: status, Proto: proto, Header: h}
		switch {
		case method == MethodHead || !bodyAllowed(code):
			r.Body = io.NopCloser(strings.NewReader(""))
		case strings.EqualFold(h.Get("Transfer-Encoding"), "chunked"):
			r.Body = io.NopCloser(&chunkedReader{r: br})
		case h.Get("Content-Length") != "":
			n, err := strconv.ParseInt(h.Get("Content-Length"), 10, 64)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("bad Content-Length %q", h.Get("Content-Length"))
			}
			r.Body = io.NopCloser(&exactReader{r: br, n: n})
		default:
			r.Body = io.NopCloser(br) // until the server closes
		}
		return r, nil
	}
}

// streamBody ends the exchange when closed; a read cut short by the context
// reports the context's error.
type streamBody struct {
	r   io.Reader
	ctx context.Context
	end func()
}

func (b *streamBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF && b.ctx.Err() != nil {
		err = b.ctx.Err()
	}
	return n, err
}

func (b *streamBody) Close() error { b.end(); return nil }

// exactReader reads n bytes; an EOF before them is ErrUnexpectedEOF.
type exactReader struct {
	r io.Reader
	n int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.n {
		p = p[:e.n]
	}
	n, err := e.r.Read(p)
	e.n -= int64(n)
	if err == io.EOF && e.n > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err == io.EOF {
		err = nil
	}
	return n, err
}

// chunkedReader decodes a chunked body; a body that ends without its
// last chunk is ErrUnexpectedEOF (the server broke off).
type chunkedReader struct {
	r    *bufio.Reader
	left int64
	done bool
}

func (c *chunkedReader) Read(p []byte) (int, error) {
	if c.done {
		return 0, io.EOF
	}
	if c.left == 0 {
		line, err := c.line()
		if err != nil {
			return 0, err
		}
		size, _, _ := strings.Cut(line, ";")
		n, err := strconv.ParseInt(strings.TrimSpace(size), 16, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("bad chunk size %q", line)
		}
		if n == 0 {
			for { // trailers up to the empty line
				l, err := c.line()
				if err != nil {
					return 0, err
				}
				if l == "" {
					break
				}
			}
			c.done = true
			return 0, io.EOF
		}
		c.left = n
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if err == io.EOF {
		return n, io.ErrUnexpectedEOF
	}
	if err == nil && c.left == 0 {
		if l, lerr := c.line(); lerr != nil {
			return n, lerr
		} else if l != "" {
			return n, fmt.Errorf("chunk not followed by CRLF")
		}
	}
	return n, err
}

func (c *chunkedReader) line() (string, error) {
	l, err := c.r.ReadString('\n')
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return "", err
	}
	if len(l) > 4096 {
		return "", errors.New("chunk line too long")
	}
	return strings.TrimRight(l, "\r\n"), nil
}
