package http1

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// ServeMux routes "METHOD /literal/{wildcard}" patterns (method optional).
type ServeMux struct {
	routes []route
}

type route struct {
	method string   // "" for any
	segs   []string // "{name}" for a wildcard
	h      Handler
}

// NewServeMux returns an empty router.
func NewServeMux() *ServeMux { return &ServeMux{} }

// HandleFunc routes pattern to f.
func (m *ServeMux) HandleFunc(pattern string, f func(ResponseWriter, *Request)) {
	m.Handle(pattern, HandlerFunc(f))
}

// Handle routes pattern to h. A malformed or repeated pattern is a
// programming error: it panics at set-up, never while serving.
func (m *ServeMux) Handle(pattern string, h Handler) {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		method, path = "", pattern
	}
	if !strings.HasPrefix(path, "/") {
		panic(fmt.Sprintf("http1: pattern %q: the path must begin with /", pattern))
	}
	r := route{method: method, segs: strings.Split(path[1:], "/"), h: h}
	for _, s := range r.segs {
		if strings.HasPrefix(s, "{") != strings.HasSuffix(s, "}") || (strings.HasPrefix(s, "{") && len(s) < 3) {
			panic(fmt.Sprintf("http1: pattern %q: bad wildcard %q", pattern, s))
		}
	}
	for _, o := range m.routes {
		if o.method == r.method && sameShape(o.segs, r.segs) {
			panic(fmt.Sprintf("http1: pattern %q is registered twice", pattern))
		}
	}
	m.routes = append(m.routes, r)
}

func isWild(s string) bool { return strings.HasPrefix(s, "{") }

func sameShape(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if isWild(a[i]) != isWild(b[i]) || (!isWild(a[i]) && a[i] != b[i]) {
			return false
		}
	}
	return true
}

// match returns the wildcard values if segs fit r.
func (r route) match(segs []string) (map[string]string, bool) {
	if len(segs) != len(r.segs) {
		return nil, false
	}
	var vals map[string]string
	for i, s := range r.segs {
		if isWild(s) {
			if segs[i] == "" {
				return nil, false
			}
			if vals == nil {
				vals = map[string]string{}
			}
			vals[s[1:len(s)-1]] = segs[i]
		} else if s != segs[i] {
			return nil, false
		}
	}
	return vals, true
}

// moreSpecific: at the first segment where they differ, a literal beats
// a wildcard.
func moreSpecific(a, b route) bool {
	for i := range a.segs {
		if isWild(a.segs[i]) != isWild(b.segs[i]) {
			return !isWild(a.segs[i])
		}
	}
	return a.method != "" && b.method == ""
}

func methodFits(pattern, got string) bool {
	return pattern == "" || pattern == got || (pattern == MethodGet && got == MethodHead)
}

// ServeHTTP dispatches r to the most specific route that fits.
func (m *ServeMux) ServeHTTP(w ResponseWriter, r *Request) {
	segs, err := splitPath(r.URL)
	if err != nil {
		Error(w, "bad path: "+err.Error(), StatusBadRequest)
		return
	}
	var best *route
	var bestVals map[string]string
	var allow []string
	for i := range m.routes {
		rt := m.routes[i]
		vals, ok := rt.match(segs)
		if !ok {
			continue
		}
		if !methodFits(rt.method, r.Method) {
			allow = append(allow, rt.method)
			continue
		}
		if best == nil || moreSpecific(rt, *best) {
			best, bestVals = &m.routes[i], vals
		}
	}
	if best == nil {
		if len(allow) > 0 {
			sort.Strings(allow)
			w.Header().Set("Allow", strings.Join(allow, ", "))
			Error(w, "method not allowed", StatusMethodNotAllowed)
			return
		}
		Error(w, "404 page not found", StatusNotFound)
		return
	}
	r.pathValues = bestVals
	best.h.ServeHTTP(w, r)
}

// splitPath splits the escaped path and unescapes each segment, so that a
// %2F inside a service name stays inside its segment.
func splitPath(u *url.URL) ([]string, error) {
	p := u.EscapedPath()
	if !strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("%q does not begin with /", p)
	}
	segs := strings.Split(p[1:], "/")
	for i, s := range segs {
		v, err := url.PathUnescape(s)
		if err != nil {
			return nil, err
		}
		segs[i] = v
	}
	return segs, nil
}

// Error answers with a plain-text message.
func Error(w ResponseWriter, msg string, code int) {
	h := w.Header()
	h.Del("Content-Length")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}
