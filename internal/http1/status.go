package http1

import (
	"errors"
	"net/textproto"
	"strconv"
)

// Header is a request's or response's header, canonical keys.
type Header = textproto.MIMEHeader

// Methods.
const (
	MethodGet  = "GET"
	MethodHead = "HEAD"
	MethodPost = "POST"
)

// Status codes corral uses.
const (
	StatusContinue              = 100
	StatusOK                    = 200
	StatusAccepted              = 202
	StatusNoContent             = 204
	StatusNotModified           = 304
	StatusBadRequest            = 400
	StatusForbidden             = 403
	StatusNotFound              = 404
	StatusMethodNotAllowed      = 405
	StatusConflict              = 409
	StatusLengthRequired        = 411
	StatusRequestEntityTooLarge = 413
	StatusURITooLong            = 414
	StatusUnprocessableEntity   = 422
	StatusHeaderFieldsTooLarge  = 431
	StatusInternalServerError   = 500
	StatusNotImplemented        = 501
	StatusServiceUnavailable    = 503
	StatusVersionNotSupported   = 505
)

var statusText = map[int]string{
	StatusContinue:              "Continue",
	StatusOK:                    "OK",
	StatusAccepted:              "Accepted",
	StatusNoContent:             "No Content",
	StatusNotModified:           "Not Modified",
	StatusBadRequest:            "Bad Request",
	StatusForbidden:             "Forbidden",
	StatusNotFound:              "Not Found",
	StatusMethodNotAllowed:      "Method Not Allowed",
	StatusConflict:              "Conflict",
	StatusLengthRequired:        "Length Required",
	StatusRequestEntityTooLarge: "Request Entity Too Large",
	StatusURITooLong:            "URI Too Long",
	StatusUnprocessableEntity:   "Unprocessable Entity",
	StatusHeaderFieldsTooLarge:  "Request Header Fields Too Large",
	StatusInternalServerError:   "Internal Server Error",
	StatusNotImplemented:        "Not Implemented",
	StatusServiceUnavailable:    "Service Unavailable",
	StatusVersionNotSupported:   "HTTP Version Not Supported",
}

// StatusText is the reason phrase of code ("" if this package does not
// know it; the status line then says "status N").
func StatusText(code int) string { return statusText[code] }

func statusLine(code int) string {
	t := statusText[code]
	if t == "" {
		t = "status " + strconv.Itoa(code)
	}
	return "HTTP/1.1 " + strconv.Itoa(code) + " " + t + "\r\n"
}

// bodyAllowed reports whether a response with this status may carry a
// body (RFC 9112 section 6.3).
func bodyAllowed(code int) bool {
	return code >= 200 && code != StatusNoContent && code != StatusNotModified
}

// ErrServerClosed is what Serve returns after Close or Shutdown.
var ErrServerClosed = errors.New("http1: server closed")
