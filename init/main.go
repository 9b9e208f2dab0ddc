// Command corral is the PID-1 supervisor: one multi-call binary.
//
//	corral [boot] [--config DIR] [--state-dir DIR]   run the supervisor (PID 1, or not)
//	corral check [DIR]                                check a configuration
//	corral status [SERVICE]                           show what runs
//	corral start|stop|restart|reload SERVICE          steer one service
//	corral kill SERVICE [SIGNAL]                      signal a service's main process
//	corral logs [-f] [-n N] [SERVICE...]              output, all services' by default
//	corral events                                     state changes, as they happen
//	corral reload [--dry-run]                         re-read the configuration
//	corral analyze [SERVICE]                          the boot timeline, the critical chain
//	corral run [OPTIONS] -- CMD [ARGS]                one command in a transient container
//	corral reboot|poweroff|halt                       ask PID 1 to shut down
//
// The same binary is the container child stage: main dispatches on a
// private environment marker before anything else.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/corral-init/corral/container"
)

// version is set with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if container.IsChildStage() {
		container.ChildMain() // never returns
	}
	args := os.Args[1:]
	// As PID 1 always boot: the kernel may pass stray words from its
	// command line as arguments, and PID 1 must never refuse to start.
	if os.Getpid() != 1 && len(args) > 0 {
		switch args[0] {
		case "-h", "-help", "--help":
			usage(os.Stdout)
			return
		case "-version", "--version":
			fmt.Println("corral", version)
			return
		}
	}
	if os.Getpid() != 1 && filepath.Base(os.Args[0]) != "init" {
		args = commandFirst(args)
	}
	if os.Getpid() == 1 || filepath.Base(os.Args[0]) == "init" || len(args) == 0 || strings.HasPrefix(args[0], "-") {
		boot(args)
		return
	}
	cmd, rest := args[0], args[1:]
	var code int
	switch cmd {
	case "boot":
		boot(rest)
		return
	case "check":
		code = cmdCheck(rest)
	case "status":
		code = cmdStatus(rest)
	case "start", "stop", "restart":
		code = cmdAction(cmd, rest)
	case "reload":
		code = cmdReload(rest)
	case "events":
		code = cmdEvents(rest)
	case "analyze":
		code = cmdAnalyze(rest)
	case "run":
		code = cmdRun(rest)
	case "kill":
		code = cmdKill(rest)
	case "logs":
		code = cmdLogs(rest)
	case "reboot", "poweroff", "halt":
		code = cmdSystem(cmd, rest)
	case "version":
		fmt.Println("corral", version)
	case "help":
		usage(os.Stdout)
	default:
		fmt.Fprintf(os.Stderr, "corral: unknown command %q\n\n", cmd)
		usage(os.Stderr)
		code = 2
	}
	os.Exit(code)
}

// commands are the CLI's command words (boot aside).
var commands = map[string]bool{
	"check": true, "status": true, "start": true, "stop": true, "restart": true,
	"reload": true, "events": true, "analyze": true, "run": true, "kill": true,
	"logs": true, "reboot": true, "poweroff": true, "halt": true, "version": true, "help": true,
}

// commandFirst moves a command word that follows flags to the front, so
// that "corral --json status" is "corral status --json", and not a second
// supervisor started over the first. A word right after a flag without
// "=" may be that flag's value ("--socket /x status"); any other word that
// is not a command ends the search.
func commandFirst(args []string) []string {
	for i, a := range args {
		switch {
		case a == "--":
			return args
		case strings.HasPrefix(a, "-"):
			continue
		case commands[a]:
			if i == 0 {
				return args
			}
			return append(append([]string{a}, args[:i]...), args[i+1:]...)
		case i == 0 || !strings.HasPrefix(args[i-1], "-") || strings.Contains(args[i-1], "="):
			return args
		}
	}
	return args
}

func usage(w *os.File) {
	fmt.Fprint(w, `usage:
  corral [boot] [FLAGS]                             run the supervisor (PID 1, or not)
      --config DIR         configuration directory (default /etc/corral)
      --state-dir DIR      runtime state: control and notify sockets (default /run/corral)
      --log-format F       auto, console or json (default: corral.toml's, else auto)
      --log-level L        debug, info, warn or error (default: corral.toml's, else info)
      --cgroup-prefix P    name of corral's cgroup subtree (default corral)
  corral check [DIR]                                check a configuration (default /etc/corral)
  corral status [SERVICE]                           services; one with its recent transitions
  corral start|stop|restart SERVICE                 steer a service (waits; --no-block does not)
  corral reload SERVICE                             its reload signal or reload command
  corral kill SERVICE [SIGNAL]                      signal its main process (default TERM)
  corral logs [-f] [-n N] [--raw] [SERVICE...]      output; none: every service and corral's own
                                                    ("corral logs corral"), interleaved by time;
                                                    --files: from the log files, earlier boots too
  corral events [-n N] [--no-follow] [SERVICE]      state changes as they happen
  corral reload [--dry-run]                         re-read the configuration: restart what changed
  corral analyze [SERVICE]                          boot timeline and critical chain
  corral run [OPTIONS] -- CMD [ARGS]                run one command in a transient container
                                                    (corral run --help for the options)
  corral reboot|poweroff|halt                       shut the machine down
  corral version

Every command takes --json. Commands that talk to a running corral use
--socket PATH (default /run/corral/corral.sock, or $CORRAL_SOCKET).
Exit codes: 0 ok, 1 refused or failed, 2 usage, 3 corral not running,
4 permission denied, 5 no such service; corral run passes the command's on.
`)
}
