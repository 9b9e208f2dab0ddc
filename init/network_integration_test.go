//go:build integration

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/corral-init/corral/internal/testutil"
	cnet "github.com/corral-init/corral/net"
	"github.com/corral-init/corral/supervisor/api"
)

// These tests give corral a network namespace the test made, with an
// uplink to a second one that plays the outside world (a LAN with a
// router): every packet stays inside namespaces the test made, and the
// sockets of the test are made on threads that joined them.

const (
	uplinkAddr  = "10.200.0.1" // the appliance's address on its uplink
	outsideAddr = "10.200.0.2" // a machine outside
)

// netTOML is corral.toml for these tests; dns points at the outside.
const netTOML = `
[network]
bridge = "corral0"
subnet = "10.66.0.0/24"
dns = ["10.200.0.53"]
`

// ipIn runs ip(8) in ns.
func ipIn(t testing.TB, ns *testutil.NetNS, args ...string) string {
	t.Helper()
	out, err := exec.Command("nsenter", append([]string{"--net=" + ns.Path(), "ip"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newAppliance makes the supervisor's namespace, with lo up and an uplink
// up0 (uplinkAddr, default route) to the outside (outsideAddr).
func newAppliance(t testing.TB) (sup, outside *testutil.NetNS) {
	t.Helper()
	sup, outside = testutil.NewNetNS(t), testutil.NewNetNS(t)
	testutil.Veth(t, sup, "up0", outside, "eth0")
	ipIn(t, sup, "addr", "add", uplinkAddr+"/24", "dev", "up0")
	ipIn(t, sup, "link", "set", "up0", "up")
	ipIn(t, sup, "link", "set", "lo", "up")
	ipIn(t, sup, "route", "add", "default", "via", outsideAddr)
	ipIn(t, outside, "addr", "add", outsideAddr+"/24", "dev", "eth0")
	ipIn(t, outside, "link", "set", "eth0", "up")
	ipIn(t, outside, "link", "set", "lo", "up")
	return sup, outside
}

// servePeer answers HTTP requests in ns on port 80 with "peer <source
// address>": what the outside sees of the appliance.
func servePeer(t testing.TB, ns *testutil.NetNS) {
	t.Helper()
	var l net.Listener
	if err := ns.Do(t, func() error {
		var err error
		l, err = net.Listen("tcp4", ":80")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil || line == "\r\n" {
						break
					}
				}
				body := "peer " + c.RemoteAddr().(*net.TCPAddr).IP.String()
				fmt.Fprintf(c, "HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
			}()
		}
	}()
}

// httpGet fetches http://addr/ by hand on the thread do runs fn on (one
// that joined the right namespace: http.Client would dial elsewhere) and
// returns the body.
func httpGet(do func(func() error) error, addr string) (string, error) {
	resp, err := rawHTTP(do, addr, "GET / HTTP/1.0\r\nHost: "+addr+"\r\n\r\n")
	if err != nil {
		return "", err
	}
	_, body, ok := strings.Cut(resp, "\r\n\r\n")
	if !ok {
		return "", fmt.Errorf("no HTTP answer: %q", resp)
	}
	return strings.TrimSpace(body), nil
}

// rawHTTP sends request to addr over TCP, dialled on the thread do runs
// its function on, retrying the dial for up to 5 s (the server may be
// starting), and returns the whole response.
func rawHTTP(do func(func() error) error, addr, request string) (string, error) {
	var resp string
	err := do(func() error {
		var c net.Conn
		var err error
		for i := 0; i < 100; i++ {
			if c, err = (&net.Dialer{Timeout: 2 * time.Second}).Dial("tcp4", addr); err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, request); err != nil {
			return err
		}
		b, err := io.ReadAll(c)
		resp = string(b)
		return err
	})
	return resp, err
}

func nsDo(t testing.TB, ns *testutil.NetNS) func(func() error) error {
	return func(fn func() error) error { return ns.Do(t, fn) }
}

// logLines is every line a service printed so far.
func logLines(c *testutil.Corral, svc string) []string {
	rep, err := c.Client.Logs(svc, 0)
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range rep.Lines {
		out = append(out, l.Text)
	}
	return out
}

func TestServiceNetwork(t *testing.T) {
	t.Parallel()
	sup, outside := newAppliance(t)
	servePeer(t, outside)
	out := "http://" + outsideAddr + "/"
	dir := writeConfig(t, netTOML, map[string]string{
		"web": payloadExec(t, "serve-http", ":80") + "[network]\nports = [\"8080:80/tcp\"]\n",
		"b":   payloadExec(t, "serve-http", ":80"),
		// a requires b: it may connect to it, by name.
		"a": payloadExec(t, "fetch", "-every", "200ms", "http://b/") + "requires = [\"b\"]\n",
		// c has no relation to b: it knows the name, not the way.
		"c":     payloadExec(t, "fetch", "-every", "200ms", "http://b/"),
		"nat":   payloadExec(t, "fetch", "-every", "200ms", out),
		"iso":   payloadExec(t, "fetch", "-every", "200ms", out) + "[network]\nisolated = true\n",
		"names": payloadExec(t, "cat", "/etc/hosts", "/etc/resolv.conf") + "restart = \"never\"\n[container]\nhostname = \"names.local\"\n",
	})
	c := testutil.StartCorralIn(t, dir, sup.Path())
	c.WaitFor(30*time.Second, "services running", running("web", "b", "a", "c", "nat", "iso"))

	t.Run("NAT: the outside sees the uplink's address", func(t *testing.T) {
		waitLog(t, c, "nat", "fetch "+out+": peer "+uplinkAddr)
	})
	t.Run("by name: a reaches b", func(t *testing.T) {
		waitLog(t, c, "a", "fetch http://b/: payload")
	})
	t.Run("policy: c cannot reach b, though it resolves the name", func(t *testing.T) {
		line := waitLog(t, c, "c", "fetch http://b/: error")
		if strings.Contains(line, "no such host") {
			t.Errorf("c did not resolve b: %s", line)
		}
	})
	t.Run("isolated: iso reaches nothing outside", func(t *testing.T) {
		waitLog(t, c, "iso", "fetch "+out+": error")
	})
	t.Run("port forward from the outside", func(t *testing.T) {
		body, err := httpGet(nsDo(t, outside), uplinkAddr+":8080")
		if err != nil || body != "payload" {
			t.Errorf("outside -> %s:8080: %q, %v; want web's page", uplinkAddr, body, err)
		}
	})
	t.Run("port forward from the supervisor itself", func(t *testing.T) {
		body, err := httpGet(nsDo(t, sup), uplinkAddr+":8080")
		if err != nil || body != "payload" {
			t.Errorf("supervisor -> %s:8080: %q, %v; want web's page", uplinkAddr, body, err)
		}
	})
	t.Run("names and nameservers", func(t *testing.T) {
		c.WaitFor(20*time.Second, "names done", stateIs("names", "done"))
		text := strings.Join(logLines(c, "names"), "\n") + "\n"
		for _, want := range []string{"127.0.0.1\tlocalhost\n", "\tnames names.local\n", "\ta\n", "\tb\n", "\tweb\n", "\tiso\n", "nameserver 10.200.0.53\n"} {
			if !strings.Contains(text, want) {
				t.Errorf("the container's /etc/hosts and resolv.conf lack %q:\n%s", want, text)
			}
		}
		st, _ := c.Client.Status()
		addr := testutil.Svc(st, "b").Address
		if addr == "" || !strings.Contains(text, addr+"\tb\n") {
			t.Errorf("b is at %q, its line is not in:\n%s", addr, text)
		}
	})
	// By now every service ran its network setup: none of corral's
	// threads may have stayed in a service's namespace.
	t.Run("the supervisor's threads stay in its namespace", func(t *testing.T) {
		own := readLink(t, c.NetNS())
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", c.Pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range tasks {
			if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/task/%s/ns/net", c.Pid, task.Name())); err == nil && ns != own {
				t.Errorf("thread %s of corral is in %s, not corral's %s", task.Name(), ns, own)
			}
		}
	})
	// Only now, after the other checks had their time: c and iso never
	// got through.
	for _, s := range []struct{ svc, never string }{{"c", "fetch http://b/: payload"}, {"iso", ": peer "}} {
		for _, l := range logLines(c, s.svc) {
			if strings.Contains(l, s.never) {
				t.Errorf("%s got through: %s", s.svc, l)
			}
		}
	}
}

// netState is what corral leaves in its network namespace: its links
// (by name, counted), corral's nftables tables and rules, the bridge's
// addresses and the forwarding switches.
type netState struct {
	links      map[string]int
	tables     []string
	rules      int
	bridgeAddr []string
	forwarding map[string]string
}

func (s netState) String() string {
	return fmt.Sprintf("links %v, tables %v with %d rules, bridge addresses %v, forwarding %v", s.links, s.tables, s.rules, s.bridgeAddr, s.forwarding)
}

func readNetState(t testing.TB, ns *testutil.NetNS) netState {
	t.Helper()
	s := netState{links: map[string]int{}, forwarding: map[string]string{}}
	for _, line := range strings.Split(strings.TrimSpace(ipIn(t, ns, "-o", "link")), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 {
			s.links[strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0]]++
		}
	}
	if _, ok := s.links["corral0"]; ok {
		for _, line := range strings.Split(strings.TrimSpace(ipIn(t, ns, "-o", "-4", "addr", "show", "dev", "corral0")), "\n") {
			if f := strings.Fields(line); len(f) > 3 {
				s.bridgeAddr = append(s.bridgeAddr, f[3])
			}
		}
	}
	if err := ns.Do(t, func() error {
		for _, ifc := range []string{"all", "up0", "corral0"} {
			if b, err := os.ReadFile("/proc/sys/net/ipv4/conf/" + ifc + "/forwarding"); err == nil {
				s.forwarding[ifc] = strings.TrimSpace(string(b))
			}
		}
		c, err := nftables.New()
		if err != nil {
			return err
		}
		tables, err := c.ListTables()
		if err != nil {
			return err
		}
		for _, tb := range tables {
			s.tables = append(s.tables, fmt.Sprintf("%d %s", tb.Family, tb.Name))
		}
		slices.Sort(s.tables)
		chains, err := c.ListChains()
		if err != nil {
			return err
		}
		for _, ch := range chains {
			rs, err := c.GetRules(ch.Table, ch)
			if err != nil {
				return err
			}
			s.rules += len(rs)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return s
}

// oneSet checks that s has each of corral's links once, its two tables
// and nothing doubled.
func oneSet(t *testing.T, s netState, want netState) {
	t.Helper()
	if !equalCounts(s.links, want.links) || !slices.Equal(s.tables, want.tables) || s.rules != want.rules ||
		!slices.Equal(s.bridgeAddr, want.bridgeAddr) || fmt.Sprint(s.forwarding) != fmt.Sprint(want.forwarding) {
		t.Errorf("network state\n got %s\nwant %s", s, want)
	}
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// supervisorShell is corral in supervisor mode: a shell is PID 1 of a pid
// namespace the test made (in the network namespace sup, with its own
// /proc and /run), and runs corral twice, one after the other, as its
// child.
type supervisorShell struct {
	cmd    *exec.Cmd
	out    *testutil.SyncBuffer
	exited chan struct{}
}

func startSupervisorShell(t *testing.T, sup *testutil.NetNS, dir, prefix string) *supervisorShell {
	t.Helper()
	bin, _ := testutil.Binaries(t)
	script := `mount --make-rprivate / && mount -t proc proc /proc && mount -t tmpfs tmpfs /run || exit 1
"$0" "$@"; echo "shell: first corral exited $?"
"$0" "$@"; echo "shell: second corral exited $?"`
	args := []string{"--net=" + sup.Path(), "--", "/bin/sh", "-c", script, bin,
		"--config", dir, "--log-format", "json", "--log-level", "debug", "--cgroup-prefix", prefix}
	s := &supervisorShell{out: &testutil.SyncBuffer{}, exited: make(chan struct{})}
	s.cmd = exec.Command("nsenter", args...)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	s.cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			_ = s.cmd.Process.Kill() // PID 1 of its namespace: takes everything in it
			<-s.exited
		}
		if t.Failed() {
			t.Logf("supervisor shell output:\n%s", s.out)
		}
		testutil.RemoveCgroupTree(t, prefix)
	})
	return s
}

// corral waits for the shell's corral child other than not, and for its
// control socket.
func (s *supervisorShell) corral(t *testing.T, not int) (int, *api.Client) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", s.cmd.Process.Pid, s.cmd.Process.Pid))
		for _, f := range strings.Fields(string(b)) {
			pid, _ := strconv.Atoi(f)
			if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); pid == not || strings.TrimSpace(string(comm)) != "corral" {
				continue
			}
			cl := api.NewClient(fmt.Sprintf("/proc/%d/root/run/corral/corral.sock", pid))
			if _, err := cl.Status(); err == nil {
				return pid, cl
			}
		}
		select {
		case <-s.exited:
			t.Fatalf("the supervisor shell exited:\n%s", s.out)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("no corral answered in the supervisor shell:\n%s", s.out)
	return 0, nil
}

func waitClient(t *testing.T, cl *api.Client, what string, cond func(api.StatusReply) bool) api.StatusReply {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last api.StatusReply
	for time.Now().Before(deadline) {
		if rep, err := cl.Status(); err == nil {
			if last = rep; cond(rep) {
				return rep
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s; last status %+v", what, last)
	return last
}

// TestRestartAfterKillLeavesOneSet kills corral (not PID 1: a supervisor
// started by a shell) with SIGKILL while its services run, and starts it
// again: the new one finds exactly one set of interfaces and rules, with
// the old services gone.
func TestRestartAfterKillLeavesOneSet(t *testing.T) {
	t.Parallel()
	sup, outside := newAppliance(t)
	servePeer(t, outside)
	dir := writeConfig(t, netTOML, map[string]string{
		"web": payloadExec(t, "serve-http", ":80") + "[network]\nports = [\"8080:80/tcp\"]\n",
		"app": payloadExec(t, "fetch", "-every", "200ms", "http://"+outsideAddr+"/") + "requires = [\"web\"]\n",
		"lab": payloadExec(t, "sleep", "1h") + "[network]\nisolated = true\n",
	})
	before := readNetState(t, sup)
	prefix := fmt.Sprintf("corral-test-%d-%d", os.Getpid(), time.Now().UnixNano()%1e9)
	sh := startSupervisorShell(t, sup, dir, prefix)

	pid1, cl := sh.corral(t, 0)
	all := func(r api.StatusReply) bool {
		for _, n := range []string{"web", "app", "lab"} {
			if testutil.Svc(r, n).State.String() != "running" {
				return false
			}
		}
		return true
	}
	waitClient(t, cl, "services running", all)
	first := readNetState(t, sup)
	for _, l := range []string{"corral0", "crlweb", "crlapp", "crllab"} {
		if first.links[l] != 1 {
			t.Fatalf("link %s: %d, want 1 (%s)", l, first.links[l], first)
		}
	}
	if first.forwarding["corral0"] != "1" || first.forwarding["up0"] != "1" || first.forwarding["all"] != "0" {
		t.Errorf("forwarding while running: %v, want the bridge and the uplink only", first.forwarding)
	}
	var oldPids []int
	for _, root := range testutil.CgroupDirs(prefix) {
		for _, svc := range []string{"web", "app", "lab"} {
			b, _ := os.ReadFile(filepath.Join(root, svc, "cgroup.procs"))
			for _, f := range strings.Fields(string(b)) {
				n, _ := strconv.Atoi(f)
				oldPids = append(oldPids, n)
			}
		}
	}
	if len(oldPids) == 0 {
		t.Fatal("no service processes found in the cgroup subtree")
	}

	if err := syscall.Kill(pid1, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	pid2, cl := sh.corral(t, pid1)
	waitClient(t, cl, "services running again", all)
	// The stale veths went at Setup, synchronously; the new ones are up.
	oneSet(t, readNetState(t, sup), first)
	for _, p := range oldPids {
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p)); err == nil && !strings.Contains(string(st), ") Z ") {
			t.Errorf("process %d of the killed corral's services still runs: %s", p, st)
		}
	}
	body, err := httpGet(nsDo(t, outside), uplinkAddr+":8080")
	if err != nil || body != "payload" {
		t.Errorf("the port forward after the restart: %q, %v", body, err)
	}
	// Not "deleted the veths an earlier corral left": the sweep's kill
	// ends the old namespaces, and the kernel may remove their veths before
	// Setup looks (it does on the emulated Pi). oneSet above is the point.
	for _, want := range []string{"killed what an earlier corral left in its cgroup subtree", "restored the sysctls an earlier corral left changed"} {
		if !strings.Contains(sh.out.String(), want) {
			t.Errorf("the second corral did not log %q", want)
		}
	}

	// A clean stop of a supervisor undoes everything it did.
	if err := syscall.Kill(pid2, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sh.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the second corral did not stop")
	}
	if !strings.Contains(sh.out.String(), "shell: second corral exited 0") {
		t.Errorf("the second corral did not exit 0")
	}
	// The services' namespaces die with their last processes, and the
	// kernel removes their veths a little later.
	for _, l := range []string{"crlweb", "crlapp", "crllab"} {
		waitNoLink(t, sup, l)
	}
	oneSet(t, readNetState(t, sup), before)
}

// TestStartStopCyclesLeaveNothing starts and stops a bridged service 200
// times through the API: no interface, rule, address or forwarding switch
// is left behind, and none is doubled on the way.
func TestStartStopCyclesLeaveNothing(t *testing.T) {
	t.Parallel()
	sup, _ := newAppliance(t)
	dir := writeConfig(t, netTOML, map[string]string{
		// SIGKILL: a SIGTERM sent before the payload has its handler would
		// be ignored (the service is PID 1 of its namespace) and the stop
		// would wait for stop_timeout.
		"cyc":   payloadExec(t, "sleep", "1h") + "stop_signal = \"SIGKILL\"\n[network]\nports = [\"8081:80/tcp\"]\n",
		"other": payloadExec(t, "sleep", "1h") + "[network]\nisolated = true\n",
	})
	c := testutil.StartCorralIn(t, dir, sup.Path())
	c.WaitFor(20*time.Second, "running", running("cyc", "other"))
	if err := c.Client.Action("cyc", "stop"); err != nil {
		t.Fatal(err)
	}
	state := func(name, want string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if rep, err := c.Client.Status(); err == nil && testutil.Svc(rep, name).State.String() == want {
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
		rep, _ := c.Client.Status()
		t.Fatalf("%s never %s: %+v\n%s", name, want, testutil.Svc(rep, name), c.Log())
	}
	state("cyc", "stopped")
	waitNoLink(t, sup, "crlcyc")
	idle := readNetState(t, sup)
	if idle.forwarding["corral0"] != "0" || idle.forwarding["up0"] != "0" {
		t.Errorf("forwarding with only an isolated service running: %v, want off", idle.forwarding)
	}

	// Any leak shows after one cycle; many make a slow one show too. In
	// the emulated guest (-test.short) a cycle costs 0.7 s, not 10 ms.
	cycles := 200
	if testing.Short() {
		cycles = 50
	}
	start := time.Now()
	for i := 0; i < cycles; i++ {
		if err := c.Client.Action("cyc", "start"); err != nil {
			t.Fatalf("cycle %d: start: %v", i, err)
		}
		state("cyc", "running")
		if i == cycles/2 {
			mid := readNetState(t, sup)
			if mid.links["crlcyc"] != 1 || mid.rules != idle.rules || !slices.Equal(mid.bridgeAddr, idle.bridgeAddr) || mid.forwarding["up0"] != "1" {
				t.Errorf("cycle %d, running: %s (idle: %s)", i, mid, idle)
			}
		}
		if err := c.Client.Action("cyc", "stop"); err != nil {
			t.Fatalf("cycle %d: stop: %v", i, err)
		}
		state("cyc", "stopped")
	}
	t.Logf("%d start/stop cycles in %v", cycles, time.Since(start).Round(time.Millisecond))
	waitNoLink(t, sup, "crlcyc")
	oneSet(t, readNetState(t, sup), idle)
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/root/run/corral/svc/cyc", c.Pid)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the service's state directory is left: %v", err)
	}
	if rep, _ := c.Client.Status(); testutil.Svc(rep, "other").State.String() != "running" {
		t.Errorf("other: %+v", testutil.Svc(rep, "other"))
	}
}

// waitNoLink waits for the kernel to remove a veth whose namespace died.
func waitNoLink(t *testing.T, ns *testutil.NetNS, name string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var ok bool
		if err := ns.Do(t, func() error {
			var err error
			ok, err = cnet.LinkExists(name)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if !ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still exists", name)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
