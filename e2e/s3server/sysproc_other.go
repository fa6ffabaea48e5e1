//go:build unix && !linux

package s3server

import "syscall"

// sysProcAttr puts the server in its own process group, so Close stops it
// with everything it started.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
