package accel

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	devicePath = "/dev/kvm"

	// guestAddr is where the page of guest memory, and the code at its
	// start, sit in guest physical memory.
	guestAddr = 0x1000
	pageSize  = 0x1000

	// kickInterval is how often the vCPU thread is signalled after the
	// timeout until KVM_RUN returns; kickGrace is how long Probe waits for
	// that. After it, a background goroutine signals every
	// backgroundKickInterval for up to backgroundKicking.
	kickInterval           = 10 * time.Millisecond
	kickGrace              = 200 * time.Millisecond
	backgroundKickInterval = 100 * time.Millisecond
	backgroundKicking      = time.Minute
)

// errInterrupted is what the vCPU goroutine reports when KVM_RUN was
// interrupted on request.
var errInterrupted = errors.New("KVM_RUN interrupted")

// machine holds the resources of a probe; fds are -1 and mappings nil until
// made.
type machine struct {
	kvm, vm, vcpu int
	mem           []byte // guest memory
	run           []byte // the vCPU's struct kvm_run
}

// release frees everything m holds.
func (m *machine) release() {
	if m.run != nil {
		_ = unix.Munmap(m.run)
		m.run = nil
	}
	for _, fd := range []*int{&m.vcpu, &m.vm, &m.kvm} {
		if *fd >= 0 {
			_ = unix.Close(*fd)
			*fd = -1
		}
	}
	if m.mem != nil {
		_ = unix.Munmap(m.mem)
		m.mem = nil
	}
}

func ioctl(fd int, req uintptr, arg uintptr) (int, error) {
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, arg)
	if errno != 0 {
		return int(r), errno
	}
	return int(r), nil
}

func ioctlPtr(fd int, req uintptr, arg unsafe.Pointer) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
	if errno != 0 {
		return errno
	}
	return nil
}

func probe(ctx context.Context, timeout time.Duration, code []byte) error {
	m := &machine{kvm: -1, vm: -1, vcpu: -1}
	if err := m.setup(code); err != nil {
		m.release()
		return err
	}
	// From here on the vCPU goroutine owns m and releases it once
	// KVM_RUN has returned for good.
	r := &runner{m: m, tid: make(chan int, 1), result: make(chan error, 1)}
	go r.loop()
	tid := <-r.tid

	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var cause error
	select {
	case err := <-r.result:
		return err
	case <-timer.C:
		cause = fmt.Errorf("kvm: KVM_RUN did not complete within %v: %w", timeout, ErrTimeout)
	case <-ctx.Done():
		cause = fmt.Errorf("kvm: probe stopped: %w", ctx.Err())
	}

	// Ask the vCPU to stop. immediate_exit makes a KVM_RUN not yet entered
	// return EINTR at once; the signal kicks one already running out of
	// the guest. A signal can land just before the ioctl is entered, so
	// keep sending until the goroutine reports back.
	if !r.requestStop() {
		return <-r.result // KVM_RUN has returned; the report is on its way
	}
	pid := unix.Getpid()
	kick := func() {
		// ESRCH would mean the thread is gone, which the result will
		// tell soon.
		_ = unix.Tgkill(pid, tid, unix.SIGURG)
	}
	tick := time.NewTicker(kickInterval)
	defer tick.Stop()
	grace := time.NewTimer(kickGrace)
	defer grace.Stop()
	for {
		kick()
		select {
		case err := <-r.result:
			if errors.Is(err, errInterrupted) {
				return cause
			}
			return err // the guest finished just in time
		case <-tick.C:
		case <-grace.C:
			// Some KVM implementations take seconds to notice a
			// signal. Don't keep the caller waiting: the goroutine
			// releases the machine whenever KVM_RUN returns.
			go r.kickUntilDone(kick)
			return fmt.Errorf("%w (KVM_RUN had not returned %v after being interrupted; it is left to finish in the background)", cause, kickGrace)
		}
	}
}

// kickUntilDone keeps calling kick, less often, until the vCPU goroutine
// reports or backgroundKicking has passed.
func (r *runner) kickUntilDone(kick func()) {
	tick := time.NewTicker(backgroundKickInterval)
	defer tick.Stop()
	stop := time.NewTimer(backgroundKicking)
	defer stop.Stop()
	for {
		select {
		case <-r.result:
			return
		case <-stop.C:
			return
		case <-tick.C:
			kick()
		}
	}
}

// setup opens /dev/kvm and prepares a VM with one vCPU about to run code.
func (m *machine) setup(code []byte) error {
	fd, err := unix.Open(devicePath, unix.O_RDWR|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("kvm: %s does not exist: the kernel lacks KVM or its module is not loaded: %w", devicePath, err)
	case errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM):
		return fmt.Errorf("kvm: permission denied opening %s: add the user to the kvm group: %w", devicePath, err)
	case err != nil:
		return fmt.Errorf("kvm: open %s: %w", devicePath, err)
	}
	m.kvm = fd

	version, err := ioctl(m.kvm, kvmGetAPIVersion, 0)
	if err != nil {
		return fmt.Errorf("kvm: KVM_GET_API_VERSION: %w", err)
	}
	if version != apiVersion {
		return fmt.Errorf("kvm: KVM API version is %d, want %d", version, apiVersion)
	}

	if m.vm, err = ioctl(m.kvm, kvmCreateVM, 0); err != nil {
		m.vm = -1
		return fmt.Errorf("kvm: KVM_CREATE_VM: %w", err)
	}

	m.mem, err = unix.Mmap(-1, 0, pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		m.mem = nil
		return fmt.Errorf("kvm: map guest memory: %w", err)
	}
	copy(m.mem, code)
	region := userspaceMemoryRegion{
		Slot:          0,
		GuestPhysAddr: guestAddr,
		MemorySize:    pageSize,
		UserspaceAddr: uint64(uintptr(unsafe.Pointer(&m.mem[0]))),
	}
	if err := ioctlPtr(m.vm, kvmSetUserMemoryRegion, unsafe.Pointer(&region)); err != nil {
		return fmt.Errorf("kvm: KVM_SET_USER_MEMORY_REGION: %w", err)
	}

	size, err := ioctl(m.kvm, kvmGetVCPUMmapSize, 0)
	if err != nil {
		return fmt.Errorf("kvm: KVM_GET_VCPU_MMAP_SIZE: %w", err)
	}
	if size < exitUnionOffset+int(unsafe.Sizeof(runIO{})) {
		return fmt.Errorf("kvm: KVM_GET_VCPU_MMAP_SIZE is %d bytes, too small for struct kvm_run", size)
	}

	if m.vcpu, err = ioctl(m.vm, kvmCreateVCPU, 0); err != nil {
		m.vcpu = -1
		return fmt.Errorf("kvm: KVM_CREATE_VCPU: %w", err)
	}
	m.run, err = unix.Mmap(m.vcpu, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		m.run = nil
		return fmt.Errorf("kvm: map struct kvm_run: %w", err)
	}

	// Real mode with CS base and selector 0, so that RIP is the physical
	// address of the code.
	var sr sregs
	if err := ioctlPtr(m.vcpu, kvmGetSregs, unsafe.Pointer(&sr)); err != nil {
		return fmt.Errorf("kvm: KVM_GET_SREGS: %w", err)
	}
	sr.CS.Base = 0
	sr.CS.Selector = 0
	if err := ioctlPtr(m.vcpu, kvmSetSregs, unsafe.Pointer(&sr)); err != nil {
		return fmt.Errorf("kvm: KVM_SET_SREGS: %w", err)
	}
	rg := regs{RIP: guestAddr, RFLAGS: 2} // bit 1 of RFLAGS is reserved, always 1
	if err := ioctlPtr(m.vcpu, kvmSetRegs, unsafe.Pointer(&rg)); err != nil {
		return fmt.Errorf("kvm: KVM_SET_REGS: %w", err)
	}
	return nil
}

// runner runs the vCPU of a machine on a goroutine of its own.
type runner struct {
	m      *machine
	tid    chan int   // the thread running KVM_RUN, sent once
	result chan error // the outcome, sent once, after m is released

	mu   sync.Mutex
	stop bool // set by requestStop: give up when KVM_RUN returns EINTR
	done bool // KVM_RUN has returned for good; m may be released
}

// loop runs the vCPU until it exits for a reason other than a signal, or
// until it is interrupted after requestStop, then releases the machine and
// reports.
func (r *runner) loop() {
	// The thread must stay the same for Tgkill to reach the ioctl.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r.tid <- unix.Gettid()

	var errno unix.Errno
	for {
		_, _, errno = unix.Syscall(unix.SYS_IOCTL, uintptr(r.m.vcpu), kvmRun, 0)
		if errno != unix.EINTR {
			break
		}
		// EINTR also comes from signals the Go runtime sends on its own:
		// carry on unless asked to stop.
		r.mu.Lock()
		stop := r.stop
		r.mu.Unlock()
		if stop {
			break
		}
	}
	r.mu.Lock()
	r.done = true
	r.mu.Unlock()

	var err error
	switch {
	case errno == unix.EINTR:
		err = errInterrupted
	case errno != 0:
		err = fmt.Errorf("kvm: KVM_RUN: %w", errno)
	default:
		err = checkExit(r.m.run)
	}
	r.m.release()
	r.result <- err
}

// requestStop asks the vCPU goroutine to stop, and reports whether it still
// has to be interrupted.
func (r *runner) requestStop() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return false
	}
	r.stop = true
	// The mapping stays valid while done is false.
	(*runHeader)(unsafe.Pointer(&r.m.run[0])).ImmediateExit = 1
	return true
}

// checkExit checks that the vCPU described by run exited on the test
// guest's OUT of 0x42 to port 0xf4.
func checkExit(run []byte) error {
	hdr := (*runHeader)(unsafe.Pointer(&run[0]))
	switch hdr.ExitReason {
	case exitIO:
		io := (*runIO)(unsafe.Pointer(&run[exitUnionOffset]))
		if io.Direction != exitIOOut || io.Port != 0xf4 || io.Size != 1 || io.Count != 1 {
			return fmt.Errorf("kvm: test guest made an unexpected I/O exit: direction %d port %#x size %d count %d",
				io.Direction, io.Port, io.Size, io.Count)
		}
		if io.DataOffset >= uint64(len(run)) {
			return fmt.Errorf("kvm: I/O exit data offset %d outside struct kvm_run", io.DataOffset)
		}
		if v := run[io.DataOffset]; v != 0x42 {
			return fmt.Errorf("kvm: test guest wrote %#x to port 0xf4, want 0x42", v)
		}
		return nil
	case exitHLT:
		return errors.New("kvm: test guest halted without writing to port 0xf4")
	case exitShutdown:
		return errors.New("kvm: test guest shut down (triple fault)")
	case exitFailEntry:
		reason := *(*uint64)(unsafe.Pointer(&run[exitUnionOffset]))
		return fmt.Errorf("kvm: VM entry failed, hardware reason %#x", reason)
	case exitInternalError:
		suberror := *(*uint32)(unsafe.Pointer(&run[exitUnionOffset]))
		return fmt.Errorf("kvm: KVM internal error, suberror %d", suberror)
	case exitMMIO:
		mmio := (*runMMIO)(unsafe.Pointer(&run[exitUnionOffset]))
		return fmt.Errorf("kvm: test guest accessed unmapped memory at %#x", mmio.PhysAddr)
	default:
		return fmt.Errorf("kvm: test guest stopped with unexpected exit reason %d", hdr.ExitReason)
	}
}
