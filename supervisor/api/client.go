package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/corral-init/corral/internal/http1"
	"github.com/corral-init/corral/supervisor"
)

// ErrNotRunning means there is no corral listening on the socket.
var ErrNotRunning = errors.New("corral is not running")

// Client talks to a running corral.
type Client struct {
	Socket string
	http   *http1.Client // requests with an answer: 30s
	stream *http1.Client // follows and reloads: no overall timeout
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	dial := func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}
	return &Client{Socket: path, http: &http1.Client{Dial: dial, Host: "corral", Timeout: 30 * time.Second}, stream: &http1.Client{Dial: dial, Host: "corral"}}
}

func (c *Client) send(ctx context.Context, hc *http1.Client, method, path string) (*http1.Response, error) {
	resp, err := hc.Do(ctx, method, path, nil)
	if err != nil {
		if _, serr := os.Stat(c.Socket); errors.Is(serr, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: no socket at %s", ErrNotRunning, c.Socket)
		}
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("connect to %s: %w", c.Socket, os.ErrPermission)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %v", ErrNotRunning, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var e ErrorReply
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return nil, &StatusError{Code: resp.StatusCode, Msg: e.Error, Problems: e.Problems}
		}
		return nil, &StatusError{Code: resp.StatusCode, Msg: resp.Status}
	}
	return resp, nil
}

func (c *Client) do(method, path string, out any) error {
	return c.doCtx(context.Background(), c.http, method, path, out)
}

func (c *Client) doCtx(ctx context.Context, hc *http1.Client, method, path string, out any) error {
	resp, err := c.send(ctx, hc, method, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read the answer to %s %s: %w", method, path, err)
	}
	if out != nil {
		return json.Unmarshal(body, out)
	}
	return nil
}

// StatusError is a non-2xx answer.
type StatusError struct {
	Code     int
	Msg      string
	Problems []string
}

func (e *StatusError) Error() string { return e.Msg }

// Status returns every service's status.
func (c *Client) Status() (StatusReply, error) {
	var r StatusReply
	return r, c.do("GET", "/v1/services", &r)
}

// Service returns one service's status with its history.
func (c *Client) Service(name string) (Service, error) {
	var r Service
	return r, c.do("GET", "/v1/services/"+url.PathEscape(name), &r)
}

// Logs returns the newest n lines of a service's output.
func (c *Client) Logs(name string, n int) (LogsReply, error) {
	var r LogsReply
	return r, c.do("GET", "/v1/services/"+url.PathEscape(name)+"/logs?n="+strconv.Itoa(n), &r)
}

func logsPath(names []string, n int, follow bool) string {
	q := url.Values{}
	for _, s := range names {
		q.Add("svc", s)
	}
	q.Set("n", strconv.Itoa(n))
	if follow {
		q.Set("follow", "1")
	}
	return "/v1/logs?" + q.Encode()
}

// LogsOf returns the newest n lines of several streams (none: all),
// merged by time.
func (c *Client) LogsOf(names []string, n int) (LogsReply, error) {
	var r LogsReply
	return r, c.do("GET", logsPath(names, n, false), &r)
}

// LogsFromFiles is LogsOf from the log files: older lines, earlier boots.
func (c *Client) LogsFromFiles(names []string, n int) (LogsReply, error) {
	var r LogsReply
	return r, c.doCtx(context.Background(), c.stream, "GET", logsPath(names, n, false)+"&files=1", &r)
}

// LogItem is one object of a log stream: a line, or Lost lines of Svc
// that were overwritten before this reader got them.
type LogItem struct {
	supervisor.LogLine
	Lost uint64
}

// FollowLogs calls fn with the newest n lines of the streams (none: all),
// then with every new line, until ctx ends or fn fails.
func (c *Client) FollowLogs(ctx context.Context, names []string, n int, fn func(LogItem) error) error {
	return c.follow(ctx, logsPath(names, n, true), func(b []byte) error {
		var it LogItem
		var lost struct {
			Lost uint64 `json:"lost"`
		}
		if err := json.Unmarshal(b, &it.LogLine); err != nil {
			return fmt.Errorf("bad line from corral: %w", err)
		}
		if json.Unmarshal(b, &lost) == nil {
			it.Lost = lost.Lost
		}
		return fn(it)
	})
}

// Events returns the newest n state changes (0: all that are kept).
func (c *Client) Events(n int) (EventsReply, error) {
	var r EventsReply
	return r, c.do("GET", "/v1/events?n="+strconv.Itoa(n), &r)
}

// FollowEvents calls fn with the newest n state changes (0: none), then
// with every new one, until ctx ends or fn fails.
func (c *Client) FollowEvents(ctx context.Context, n int, fn func(EventItem) error) error {
	return c.follow(ctx, "/v1/events?follow=1&n="+strconv.Itoa(n), func(b []byte) error {
		var e EventItem
		if err := json.Unmarshal(b, &e); err != nil {
			return fmt.Errorf("bad event from corral: %w", err)
		}
		return fn(e)
	})
}

func (c *Client) follow(ctx context.Context, path string, fn func([]byte) error) error {
	resp, err := c.send(ctx, c.stream, "GET", path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if err := fn(sc.Bytes()); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := sc.Err(); err != nil && !strings.Contains(err.Error(), "closed") {
		return fmt.Errorf("follow %s: %w", path, err)
	}
	return nil
}

// Boot returns the boot timeline.
func (c *Client) Boot() (BootReply, error) {
	var r BootReply
	return r, c.do("GET", "/v1/boot", &r)
}

// Reload asks corral to re-read its configuration (dryRun: only plan).
// It waits for the stops the plan needs.
func (c *Client) Reload(ctx context.Context, dryRun bool) (ReloadReply, error) {
	var r ReloadReply
	p := "/v1/reload"
	if dryRun {
		p += "?dry_run=1"
	}
	return r, c.doCtx(ctx, c.stream, "POST", p, &r)
}

// Action asks a service to start, stop or restart.
func (c *Client) Action(name, action string) error {
	return c.do("POST", "/v1/services/"+url.PathEscape(name)+"/"+action, nil)
}

// Kill sends a signal (a name like "KILL" or a number) to a service's
// main process.
func (c *Client) Kill(name, signal string) error {
	return c.do("POST", "/v1/services/"+url.PathEscape(name)+"/kill?signal="+url.QueryEscape(signal), nil)
}

// System asks for reboot, poweroff or halt.
func (c *Client) System(action string) error {
	return c.do("POST", "/v1/system/"+action, nil)
}
