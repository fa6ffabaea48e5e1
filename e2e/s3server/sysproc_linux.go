package s3server

import "syscall"

// sysProcAttr puts the server in its own process group, so Close stops it
// with everything it started, and kills it should the test binary die
// without closing it (a test timeout).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
