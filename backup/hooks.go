package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Hooks are commands run around a backup, each with sh -c: Pre before the
// first source is read, Post after the backup, whatever happened. An
// operator uses them to pause the Airflow scheduler, or an application
// that writes to the stores, for the length of the backup.
type Hooks struct {
	Pre, Post []string
	// Timeout bounds each command; default DefaultHookTimeout.
	Timeout time.Duration
}

// DefaultHookTimeout bounds each hook command unless Hooks.Timeout says
// otherwise.
const DefaultHookTimeout = 5 * time.Minute

// ErrHook is wrapped by the error of a hook that failed: a pre hook's
// aborts the backup; a post hook's is returned with the Result of a
// snapshot that was saved.
var ErrHook = errors.New("hook failed")

// HookError is a hook command that failed.
type HookError struct {
	Phase   string // "pre" or "post"
	N       int    // 1-based position among the phase's commands
	Command string
	Err     error
	// Output is the end of what the command printed.
	Output string
}

func (e *HookError) Error() string {
	msg := fmt.Sprintf("%s hook %d (%s) failed: %v", e.Phase, e.N, e.Command, e.Err)
	if e.Output != "" {
		msg += ": " + e.Output
	}
	return msg
}

func (e *HookError) Unwrap() []error { return []error{ErrHook, e.Err} }

// runHooks runs one phase's commands in order and stops at the first that
// fails. env is added to the process environment.
func runHooks(ctx context.Context, phase string, cmds []string, timeout time.Duration, env []string, log *slog.Logger) error {
	if timeout <= 0 {
		timeout = DefaultHookTimeout
	}
	for i, c := range cmds {
		log.Info("running hook", "phase", phase, "command", c)
		hctx, cancel := context.WithTimeout(ctx, timeout)
		cmd := exec.CommandContext(hctx, "/bin/sh", "-c", c)
		cmd.Env = append(append(os.Environ(), "COFFER_HOOK="+phase), env...)
		cmd.WaitDelay = 5 * time.Second
		// The command's own children (a shell's) go with it.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		timedOut := hctx.Err() == context.DeadlineExceeded
		cancel()
		for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			if l != "" {
				log.Info("hook output", "phase", phase, "line", l)
			}
		}
		if timedOut {
			err = fmt.Errorf("timed out after %s", timeout)
		}
		if err != nil {
			return &HookError{Phase: phase, N: i + 1, Command: c, Err: err, Output: lastLine(out.String())}
		}
	}
	return nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(string(bytes.ToValidUTF8([]byte(s), nil)))
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
