// Command corral-payload is the static test program that root integration
// tests run inside containers. Each subcommand does one observable thing.
//
//	ns                        print this process's view: pid, hostname, namespaces, uid
//	sleep D                   sleep for D (e.g. 1h)
//	exit N [D]                exit with code N (after D)
//	trap-term D               sleep D, exit 0 on SIGTERM
//	notify [-delay D] [-status S] [-child]
//	                          send READY=1 (from a child process with -child) via go-systemd
//	notify-raw TEXT           send TEXT as one datagram to NOTIFY_SOCKET
//	sdnotify STEP...          run notify steps in order, then wait for SIGTERM:
//	                          KEY=VALUE[\n...]  one datagram via go-systemd
//	                          +sleep=D           pause
//	                          +every=D:N:MSG     send MSG N times, D apart
//	                          +big               a datagram larger than 4 KiB
//	                          +fd                READY=1 with a passed fd
//	                          +barrier           sd_notify_barrier: BARRIER=1 with a pipe, wait for it to close
//	                          +to=PATH:MSG       send MSG to another socket
//	                          +child             run the remaining steps in a child process
//	                          +mainpid-child     same, and first send MAINPID=<child>
//	                          +exit=N            exit now with N
//	alloc SIZE_MB             allocate and touch memory, 1 MiB at a time
//	forkbomb [CHILD ARG...]   fork children (default: this program sleeping) until the
//	                          kernel refuses, report, then stay up
//	setsid-child              start a setsid grandchild that sleeps, print its pid, stay up
//	serve-http ADDR           serve "payload" over HTTP
//	env                       print the environment
//	spin                      burn CPU forever
//	write PATH...             try to create each file, print the result
//	cat PATH...               print files
//	fetch [-every D] URL...   GET each URL (names from /etc/hosts, by Go's resolver)
//	                          and print "fetch URL: BODY" or "fetch URL: error: ...";
//	                          with -every, again every D; then stay up
//	stamp FILE                write CLOCK_MONOTONIC (ns) to FILE, then sleep: restart latency
//	escape                    try to break out of the sandbox; one "ATTEMPT name: result" line each
//	flood N [SIZE]            print N lines of SIZE bytes as fast as it can, then stay up
//	tick D PREFIX             print "PREFIX N" every D
//	weird                     print a 10000-byte line, binary bytes, a last line without newline; exit
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: corral-payload COMMAND [ARGS]")
	}
	cmd, args := os.Args[1], os.Args[2:]
	switch cmd {
	case "ns":
		host, _ := os.Hostname()
		fmt.Printf("pid=%d hostname=%s uid=%d gid=%d\n", os.Getpid(), host, os.Getuid(), os.Getgid())
		for _, ns := range []string{"pid", "net", "mnt", "uts", "ipc", "cgroup"} {
			l, _ := os.Readlink("/proc/self/ns/" + ns)
			fmt.Printf("ns.%s=%s\n", ns, l)
		}
		if b, err := os.ReadFile("/proc/self/cgroup"); err == nil {
			fmt.Printf("cgroup=%s\n", strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", ";"))
		}
		wd, _ := os.Getwd()
		fmt.Printf("cwd=%s\n", wd)
		sleepOrTerm(arg(args, 0, "1h"))
	case "sleep":
		time.Sleep(dur(arg(args, 0, "1h")))
	case "exit":
		n, _ := strconv.Atoi(arg(args, 0, "1"))
		time.Sleep(dur(arg(args, 1, "0s")))
		fmt.Println("payload: exiting with", n)
		os.Exit(n)
	case "trap-term":
		sleepOrTerm(arg(args, 0, "1h"))
	case "notify":
		notifyCmd(args)
	case "reloadable":
		// Handlers first: PID 1 of a namespace that gets SIGHUP before it
		// has one exits (the Go runtime cannot kill it), however rare.
		sigc := make(chan os.Signal, 1)
		signal.Notify(sigc, syscall.SIGHUP, syscall.SIGTERM)
		send("READY=1\nSTATUS=ready")
		for n := 1; ; n++ {
			if <-sigc == syscall.SIGTERM {
				os.Exit(0)
			}
			var ts syscall.Timespec
			_ = clockGettime(&ts)
			send(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", ts.Nano()/1000))
			time.Sleep(200 * time.Millisecond)
			send(fmt.Sprintf("READY=1\nSTATUS=reloaded %d times", n))
		}
	case "sdnotify":
		steps(args)
		sleepOrTerm("1h")
	case "notify-raw":
		raw(arg(args, 0, "READY=1"))
		sleepOrTerm("1h")
	case "alloc":
		mb, _ := strconv.Atoi(arg(args, 0, "256"))
		var keep [][]byte
		for i := 1; i <= mb; i++ {
			b := make([]byte, 1<<20)
			for j := range b {
				b[j] = byte(j)
			}
			keep = append(keep, b)
			if i%8 == 0 {
				fmt.Printf("payload: allocated %d MiB\n", i)
			}
		}
		fmt.Println("payload: allocated everything", len(keep))
		sleepOrTerm("1h")
	case "forkbomb":
		forkbomb(args)
	case "setsid-child":
		c := exec.Command("/proc/self/exe", "sleep", "1h")
		c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := c.Start(); err != nil {
			fail(err.Error())
		}
		fmt.Printf("payload: grandchild pid=%d\n", c.Process.Pid)
		sleepOrTerm("1h")
	case "serve-http":
		http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "payload") })
		fmt.Println("payload: serving on", arg(args, 0, ":80"))
		fail(http.ListenAndServe(arg(args, 0, ":80"), nil).Error())
	case "env":
		for _, e := range os.Environ() {
			fmt.Println(e)
		}
		sleepOrTerm(arg(args, 0, "1h"))
	case "write":
		for _, p := range args {
			err := os.WriteFile(p, []byte("x"), 0o644)
			fmt.Printf("write %s: %v\n", p, errText(err))
		}
	case "escape":
		escape()
		sleepOrTerm(arg(args, 0, "1h"))
	case "stamp":
		var ts unix.Timespec
		_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
		if err := os.WriteFile(arg(args, 0, "/tmp/stamp"), []byte(strconv.FormatInt(ts.Nano(), 10)), 0o644); err != nil {
			fail(err.Error())
		}
		sleepOrTerm("1h")
	case "cat":
		if len(args) == 0 {
			args = []string{"/dev/null"}
		}
		for _, p := range args {
			b, err := os.ReadFile(p)
			if err != nil {
				fail(err.Error())
			}
			os.Stdout.Write(b)
		}
	case "fetch":
		fetch(args)
		sleepOrTerm("1h")
	case "spin":
		for {
		}
	case "flood":
		// flood N [SIZE]: N lines of SIZE bytes as fast as possible, then stay up.
		n, _ := strconv.Atoi(arg(args, 0, "100000"))
		size, _ := strconv.Atoi(arg(args, 1, "40"))
		w := bufio.NewWriterSize(os.Stdout, 64<<10)
		pad := strings.Repeat("f", max(size-20, 0))
		for i := 0; i < n; i++ {
			fmt.Fprintf(w, "flood %09d %s\n", i, pad)
		}
		w.Flush()
		time.Sleep(1500 * time.Millisecond) // past any rate limit's burst
		fmt.Println("payload: flood done")
		sleepOrTerm("1h")
	case "tick":
		// tick D PREFIX: print "PREFIX N" every D, N counting from 0.
		d := dur(arg(args, 0, "100ms"))
		prefix := arg(args, 1, "tick")
		sigc := make(chan os.Signal, 1)
		signal.Notify(sigc, syscall.SIGTERM)
		t := time.NewTicker(d)
		for i := 0; ; i++ {
			fmt.Printf("%s %d\n", prefix, i)
			select {
			case <-t.C:
			case <-sigc:
				os.Exit(0)
			}
		}
	case "weird":
		// A 10000-byte line, a line of binary bytes and escapes, and a last
		// line without its newline; then exit 0.
		os.Stdout.Write([]byte(strings.Repeat("0123456789", 1000) + "\n"))
		os.Stdout.Write([]byte("bin\x00\xff\xfe\x1b[2J\r\tend\n"))
		os.Stdout.Write([]byte("no newline at the end"))
	default:
		fail("unknown command " + cmd)
	}
}

func notifyCmd(args []string) {
	fs := flag.NewFlagSet("notify", flag.ExitOnError)
	delay := fs.Duration("delay", 0, "wait before READY=1")
	status := fs.String("status", "", "STATUS= to send with READY=1")
	child := fs.Bool("child", false, "send READY=1 from a child process")
	exitAfter := fs.Bool("exit", false, "exit right after sending")
	_ = fs.Parse(args)
	time.Sleep(*delay)
	msg := "READY=1"
	if *status != "" {
		msg += "\nSTATUS=" + *status
	}
	if *child {
		c := exec.Command("/proc/self/exe", "notify-raw", msg)
		c.Stdout, c.Stderr = os.Stdout, os.Stderr
		if err := c.Start(); err != nil {
			fail(err.Error())
		}
		fmt.Println("payload: child", c.Process.Pid, "sends READY=1")
	} else {
		ok, err := daemon.SdNotify(false, msg)
		fmt.Printf("payload: sd_notify %q sent=%v err=%v\n", msg, ok, err)
	}
	if *exitAfter {
		return
	}
	sleepOrTerm("1h")
}

// steps runs sdnotify steps (see the package doc).
func steps(args []string) {
	for i, a := range args {
		d, v, _ := strings.Cut(a, "=")
		switch d {
		case "+sleep":
			time.Sleep(dur(v))
		case "+every":
			parts := strings.SplitN(v, ":", 3)
			n, _ := strconv.Atoi(parts[1])
			for j := 0; j < n; j++ {
				send(parts[2])
				time.Sleep(dur(parts[0]))
			}
		case "+big":
			err := rawTo(os.Getenv("NOTIFY_SOCKET"), []byte("READY=1\nSTATUS="+strings.Repeat("x", 5000)), nil)
			fmt.Println("payload: sent a 5 KiB datagram:", errText(err))
		case "+fd":
			r, w, _ := os.Pipe()
			err := rawTo(os.Getenv("NOTIFY_SOCKET"), []byte("READY=1"), syscall.UnixRights(int(w.Fd())))
			w.Close()
			r.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, rerr := r.Read(make([]byte, 1))
			fmt.Printf("payload: sent READY=1 with an fd (%s); the receiver closed it: %v\n", errText(err), n == 0 && errors.Is(rerr, io.EOF))
		case "+barrier":
			r, w, _ := os.Pipe()
			err := rawTo(os.Getenv("NOTIFY_SOCKET"), []byte("BARRIER=1"), syscall.UnixRights(int(w.Fd())))
			w.Close()
			r.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, rerr := r.Read(make([]byte, 1))
			fmt.Printf("payload: barrier sent (%s), answered: %v\n", errText(err), n == 0 && errors.Is(rerr, io.EOF))
		case "+to":
			path, msg, _ := strings.Cut(v, ":")
			err := rawTo(path, []byte(msg), nil)
			fmt.Printf("payload: sent %q to %s: %s\n", msg, path, errText(err))
		case "+child", "+mainpid-child":
			c := exec.Command("/proc/self/exe", append([]string{"sdnotify"}, args[i+1:]...)...)
			c.Stdout, c.Stderr = os.Stdout, os.Stderr
			if err := c.Start(); err != nil {
				fail(err.Error())
			}
			fmt.Printf("payload: child pid=%d runs the rest\n", c.Process.Pid)
			if d == "+mainpid-child" {
				send(fmt.Sprintf("MAINPID=%d", c.Process.Pid))
			}
			return
		case "+exit":
			n, _ := strconv.Atoi(v)
			fmt.Println("payload: exiting with", n)
			os.Exit(n)
		default:
			send(strings.ReplaceAll(a, `\n`, "\n"))
		}
	}
}

func send(msg string) {
	ok, err := daemon.SdNotify(false, msg)
	fmt.Printf("payload: pid %d sd_notify %q sent=%v err=%v\n", os.Getpid(), msg, ok, err)
}

// rawTo sends one datagram with optional control data (Go's UnixConn
// refuses WriteMsgUnix on a connected datagram socket).
func rawTo(path string, b, oob []byte) error {
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	return syscall.Sendmsg(fd, b, oob, &syscall.SockaddrUnix{Name: path}, 0)
}

// raw sends one datagram, without go-systemd, for the child-sender case.
func raw(msg string) {
	c, err := net.Dial("unixgram", os.Getenv("NOTIFY_SOCKET"))
	if err != nil {
		fail(err.Error())
	}
	defer c.Close()
	if _, err := c.Write([]byte(msg)); err != nil {
		fail(err.Error())
	}
}

func errText(err error) string {
	if err == nil {
		return "ok"
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

func sleepOrTerm(d string) {
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGTERM)
	select {
	case <-sigc:
		fmt.Println("payload: SIGTERM, exiting")
		os.Exit(0)
	case <-time.After(dur(d)):
	}
}

func arg(args []string, i int, def string) string {
	if i < len(args) {
		return args[i]
	}
	return def
}

func dur(s string) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		fail("bad duration " + s)
	}
	return d
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "payload:", msg)
	os.Exit(111)
}

// clockGettime reads CLOCK_MONOTONIC, as sd_notify's MONOTONIC_USEC wants.
func clockGettime(ts *syscall.Timespec) error {
	_, _, e := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 1, uintptr(unsafe.Pointer(ts)), 0)
	if e != 0 {
		return e
	}
	return nil
}

// escape tries what a compromised service would, and prints each result.
func escape() {
	try := func(name string, err error) {
		fmt.Printf("ATTEMPT %s: %s\n", name, errText(err))
	}
	try("mount", syscall.Mount("tmpfs", "/tmp", "tmpfs", 0, ""))
	try("pivot_root", syscall.PivotRoot("/tmp", "/tmp"))
	if f, err := os.Open("/dev/null"); err == nil {
		_, _, e := syscall.Syscall(unix.SYS_FINIT_MODULE, f.Fd(), 0, 0)
		try("load_module", errnoOrNil(e))
		f.Close()
	}
	try("write_proc_sys", os.WriteFile("/proc/sys/kernel/hostname", []byte("evil"), 0))
	try("sysrq_trigger", os.WriteFile("/proc/sysrq-trigger", []byte("h"), 0))
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_ICMP)
	if err == nil {
		syscall.Close(fd)
	}
	try("raw_socket", err)
	_, _, e := syscall.Syscall(syscall.SYS_PTRACE, syscall.PTRACE_ATTACH, 1, 0)
	try("ptrace", errnoOrNil(e))
	try("mknod", syscall.Mknod("/tmp/null2", syscall.S_IFCHR|0o666, 1<<8|3))
	try("sethostname", syscall.Sethostname([]byte("evil")))
	try("unshare_net", syscall.Unshare(syscall.CLONE_NEWNET))
	try("kcore", readErr("/proc/kcore"))
	try("reboot", syscall.Reboot(syscall.LINUX_REBOOT_CMD_RESTART))
	if len(os.Args) > 3 {
		try("read_other", readErr(os.Args[3]))
	}
	var root, proc1 syscall.Stat_t
	syscall.Stat("/", &root)
	syscall.Stat("/proc/1/root/", &proc1)
	fmt.Printf("ATTEMPT proc1_root_is_own_root: %v\n", root.Ino == proc1.Ino && root.Dev == proc1.Dev)
	entries, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err == nil {
			n++
		}
	}
	fmt.Printf("ATTEMPT visible_processes: %d\n", n)
}

func readErr(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.Read(make([]byte, 16))
	return err
}

func errnoOrNil(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// fetch gets each URL with a short timeout and prints one line each.
func fetch(args []string) {
	fs := flag.NewFlagSet("fetch", flag.ExitOnError)
	every := fs.Duration("every", 0, "fetch again this often (0 = once)")
	_ = fs.Parse(args)
	c := &http.Client{Timeout: 2 * time.Second}
	for {
		for _, u := range fs.Args() {
			resp, err := c.Get(u)
			if err != nil {
				fmt.Printf("fetch %s: error: %v\n", u, err)
				continue
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				fmt.Printf("fetch %s: error: %v\n", u, err)
				continue
			}
			fmt.Printf("fetch %s: %s\n", u, strings.TrimSpace(string(b)))
		}
		if *every <= 0 {
			return
		}
		time.Sleep(*every)
	}
}

// forkbomb starts children until the kernel refuses one, prints how many it
// got, and waits for SIGTERM. It must live to report: once the pids limit
// is reached, the Go runtime cannot start another thread and would die with
// "fatal error: newosproc". So the thread signal.Notify needs is started
// first, the garbage collector (whose workers want threads) is off, and a
// few reserve children are started before the loop and killed right after
// it, which frees pids for whatever thread the runtime wants next. A
// single-threaded child (busybox sleep) costs exactly one pid each; a Go
// child costs several and may itself die starting up.
func forkbomb(child []string) {
	if len(child) == 0 {
		child = []string{"/proc/self/exe", "sleep", "1h"}
	}
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGTERM)
	debug.SetGCPercent(-1)
	start := func() (*exec.Cmd, error) {
		c := exec.Command(child[0], child[1:]...)
		return c, c.Start()
	}
	var reserve []*exec.Cmd
	for range 3 {
		if c, err := start(); err == nil {
			reserve = append(reserve, c)
		}
	}
	n := 0
	var last error
	for i := 0; i < 100000; i++ {
		if _, err := start(); err != nil {
			last = err
			break
		}
		n++
	}
	// A zombie still holds its pid: reap the reserve before going on.
	for _, c := range reserve {
		c.Process.Kill()
		c.Wait()
	}
	n += len(reserve)
	debug.SetGCPercent(100)
	fmt.Printf("payload: forked %d children, then: %v\n", n, last)
	<-sigc
	os.Exit(0)
}
