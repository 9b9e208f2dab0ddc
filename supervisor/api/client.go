package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"
)

// ErrNotRunning means there is no corral listening on the socket.
var ErrNotRunning = errors.New("corral is not running")

// Client talks to a running corral.
type Client struct {
	Socket string
	http   *http.Client
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	return &Client{Socket: path, http: &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}},
	}}
}

func (c *Client) do(method, path string, out any) error {
	req, err := http.NewRequest(method, "http://corral"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if _, serr := os.Stat(c.Socket); errors.Is(serr, os.ErrNotExist) {
			return fmt.Errorf("%w: no socket at %s", ErrNotRunning, c.Socket)
		}
		if errors.Is(err, os.ErrPermission) {
			return fmt.Errorf("connect to %s: %w", c.Socket, os.ErrPermission)
		}
		return fmt.Errorf("%w: %v", ErrNotRunning, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e ErrorReply
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return &StatusError{Code: resp.StatusCode, Msg: e.Error}
		}
		return &StatusError{Code: resp.StatusCode, Msg: resp.Status}
	}
	if out != nil {
		return json.Unmarshal(body, out)
	}
	return nil
}

// StatusError is a non-2xx answer.
type StatusError struct {
	Code int
	Msg  string
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
	return r, c.do("GET", "/v1/services/"+name, &r)
}

// Logs returns the newest n lines of a service's output.
func (c *Client) Logs(name string, n int) (LogsReply, error) {
	var r LogsReply
	return r, c.do("GET", "/v1/services/"+name+"/logs?n="+strconv.Itoa(n), &r)
}

// Action asks a service to start, stop or restart.
func (c *Client) Action(name, action string) error {
	return c.do("POST", "/v1/services/"+name+"/"+action, nil)
}

// Kill sends a signal (a name like "KILL" or a number) to a service's
// main process.
func (c *Client) Kill(name, signal string) error {
	return c.do("POST", "/v1/services/"+name+"/kill?signal="+url.QueryEscape(signal), nil)
}

// System asks for reboot, poweroff or halt.
func (c *Client) System(action string) error {
	return c.do("POST", "/v1/system/"+action, nil)
}
