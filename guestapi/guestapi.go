// Package guestapi is the contract between the host-side runner and the
// guest init: the names of the virtio serial ports they share and the JSON
// messages they exchange on the control port. Both sides import it; it
// imports nothing from nos.
//
// The control port carries one JSON Message per line in each direction:
//
//	guest → host  {"type":"ready"}                 init is up and waits for its config
//	host  → guest {"type":"config","config":{…}}   runtime config (args, env, network, secrets)
//	guest → host  {"type":"started","pid":N}       the application runs
//	host  → guest {"type":"signal","signal":15}    deliver a signal to the application
//	guest → host  {"type":"exit","code":N}         the application ended; the guest powers off
//	guest → host  {"type":"error","error":"…"}     init could not start the application
//	host  → guest {"type":"probe","id":N,"probe":{…}} run a health probe inside the guest
//	guest → host  {"type":"probe-result","id":N,"error":"…"} its verdict; no error is healthy
//	host  → guest {"type":"exec","id":N,"exec":{…}} start a process beside the application
//
// # Interactive streams
//
// Inits of image.InitAPIInteractive (8) have a fourth port, PortIO, when
// the host wires it (Config.IO). It carries binary frames (see Frame):
// a kind byte, a big-endian uint32 session, a big-endian uint32 length
// and that many bytes of data. Session 0 is the application; an exec
// session has the ID of its exec message. On it:
//
//	host  → guest FrameStdin  data for the session's stdin (Config.Stdin, Exec.Stdin)
//	host  → guest FrameEOF    the session's stdin ends
//	host  → guest FrameResize its terminal's size (Config.TTY, Exec.TTY)
//	guest → host  FrameStdout, FrameStderr an exec session's output
//	guest → host  FrameExit   an exec session ended: exit code, and why it could not run
//
// A virtio port cannot be half-closed, so the end of stdin is a frame, on
// the same port as the data so that it never overtakes it; likewise an
// exec session's exit frame follows its last output. The application's
// own output stays on PortStdout and PortStderr (with Config.TTY, the
// terminal's merged output is all on PortStdout), so the instance's log
// has it as before.
//
// # One port
//
// Inits of image.InitAPIMux (10) find a single port, PortMux, instead of
// the four: it carries the control, stdout, stderr and I/O channels (Mux)
// as frames of a kind byte (data, or close), a channel byte and a
// big-endian uint32 length, at most 32 KiB of data each; each channel
// holds what its port held. The app's stdout and stderr are then pipes
// the init copies into their channels, drained before the exit report. A
// port costs the guest 4 MiB of kernel buffers (1024 slots of a page each
// on virtio-mmio), and the multiport control queue 4 more: one port, 8
// MiB, instead of 20. The init takes whichever ports it finds.
//
// With Config.TTY (or Exec.TTY) the init opens a pseudo-terminal
// (/dev/ptmx on its devpts), makes its slave the program's stdin, stdout,
// stderr and controlling terminal (a new session, TIOCSCTTY), and copies
// between the master and the frames: Ctrl-C typed on the host reaches
// the program as the terminal's SIGINT. An exec message the init refuses
// (Config.NoExec, a program not found) is answered by a FrameExit with
// ExitNotFound or ExitCannotExecute and the reason.
//
// Health probes run inside the guest, as docker runs HEALTHCHECK inside the
// container: the verdict does not depend on how the host reaches the guest
// (a user-mode NAT that accepts connections the guest later refuses, a tap
// device, no published port at all).
//
// Runtime config travels over this port, not the kernel command line, so
// secrets passed with `nos run -e` never show in /proc/cmdline or in the
// host's process list.
package guestapi

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"time"
)

// Names of the virtio serial ports (virtserialport name=…).
const (
	PortControl = "nos.ctl"
	PortStdout  = "nos.stdout"
	PortStderr  = "nos.stderr"
)

// StandaloneConfig is where an exported image (nos export) carries its
// Config, as JSON, in an extra initramfs appended to the image's: an init
// that finds it there takes its config from it instead of waiting for a
// host on the control port, sends the application's output to the
// console and stops the application (SIGTERM) when the machine's power
// button is pressed. It is a file, not the kernel command line, for the
// reason above: environment variables may be secrets.
const StandaloneConfig = "/etc/nos/standalone.json"

// Message types.
const (
	TypeReady   = "ready"
	TypeConfig  = "config"
	TypeStarted = "started"
	TypeSignal  = "signal"
	TypeExit    = "exit"
	TypeError   = "error"
	// TypeProbe asks the init to probe the application (see Probe);
	// TypeProbeResult answers it, with the request's ID.
	TypeProbe       = "probe"
	TypeProbeResult = "probe-result"
	// TypeExec starts a process beside the application (see Exec); ID
	// is its session on PortIO, which reports its end.
	TypeExec = "exec"
	// Snapshots (inits of image.InitAPISnapshot, one port): the host asks
	// TypeSnapshot; the init stops every other process (SIGSTOP) and its
	// own writing, and answers TypeQuiesced as
	// the last frame before the host stops the VM and saves it. Every
	// copy that runs on from that state, the original or one restored
	// from it, then gets TypeRestore (see Restore) as its first message;
	// the init applies it, lets the processes go on (SIGCONT) and answers
	// TypeRestored.
	TypeSnapshot = "snapshot"
	TypeQuiesced = "quiesced"
	TypeRestore  = "restore"
	TypeRestored = "restored"
)

// Message is one line on the control port.
type Message struct {
	Type   string  `json:"type"`
	Config *Config `json:"config,omitempty"`
	Signal int     `json:"signal,omitempty"`
	PID    int     `json:"pid,omitempty"`
	Code   int     `json:"code,omitempty"`
	Error  string  `json:"error,omitempty"`
	// ID pairs a probe with its result.
	ID    int    `json:"id,omitempty"`
	Probe *Probe `json:"probe,omitempty"`
	Exec  *Exec  `json:"exec,omitempty"`
	// Restore goes with TypeRestore.
	Restore *Restore `json:"restore,omitempty"`
}

// Restore is what a VM that runs on from a saved state must take again:
// the time (its clock stopped when the state was saved), entropy (every
// copy would otherwise draw the same random numbers), and who it is now.
type Restore struct {
	// UnixNano is the host's time when it sent the message.
	UnixNano int64 `json:"unixNano"`
	// Seed is fresh randomness for the kernel's pool; the init credits it
	// and reseeds the kernel's generator, so /dev/urandom, getrandom and
	// what the app derives from them differ from every other copy.
	Seed []byte `json:"seed"`
	// Hostname is the instance's name.
	Hostname string `json:"hostname,omitempty"`
	// Generation counts the times this VM's state was restored (0: the
	// original, running on after its state was saved).
	Generation int `json:"generation"`
	// Signal, if not 0, is sent to the application once all this is done.
	Signal int `json:"signal,omitempty"`
}

// RestoredFile is where the init writes the last Restore it applied
// (without its seed), as JSON, for the application to read: an app that
// must know it was restored (to drop connections, renew leases, reseed a
// generator of its own) watches it, or asks for a signal.
const RestoredFile = "/run/nos/restored.json"

// MaxSeed bounds Restore.Seed.
const MaxSeed = 512

// Probe is one health check the init runs against the application from
// inside the guest: a TCP connect to 127.0.0.1:Port, or with HTTPPath an
// HTTP GET of that path answering 2xx or 3xx.
type Probe struct {
	Port     int    `json:"port"`
	HTTPPath string `json:"httpPath,omitempty"`
	// TimeoutMS bounds the whole probe, in milliseconds; 0 means 5000.
	TimeoutMS int `json:"timeoutMs,omitempty"`
}

// Config is what the init needs to start the application.
type Config struct {
	// Argv is the full command: entrypoint followed by arguments.
	Argv []string `json:"argv"`
	// EntrypointLen is how many of Argv's first words are the image's
	// entrypoint; the rest are its arguments, which a standalone guest's
	// user-data may replace (see UserData).
	EntrypointLen int      `json:"entrypointLen,omitempty"`
	Env           []string `json:"env,omitempty"`
	WorkingDir    string   `json:"workingDir,omitempty"`
	Hostname      string   `json:"hostname,omitempty"`
	// Network is the first NIC's configuration, for inits that know only
	// one (older images); Networks, when set, has every NIC, the first
	// being Network.
	Network  *Network  `json:"network,omitempty"`
	Networks []Network `json:"networks,omitempty"`
	// Seed is entropy from the host, credited to the guest's pool.
	Seed []byte `json:"seed,omitempty"`
	// Time is the host's clock when the config was sent.
	Time time.Time `json:"time"`
	// Root, when set, is the block device holding the application's root
	// filesystem: the init mounts it (read-only, or under a writable
	// overlay) and makes it the root before starting the application.
	Root *Root `json:"root,omitempty"`
	// Tmpfs are extra tmpfs mounts (docker's --tmpfs), made inside the
	// application's root after it is in place.
	Tmpfs []Tmpfs `json:"tmpfs,omitempty"`
	// User is who the application runs as; nil is root (0:0).
	User *User `json:"user,omitempty"`
	// Mounts are the volumes to mount, in order.
	Mounts []Mount `json:"mounts,omitempty"`
	// Caps are the capabilities the application keeps, e.g.
	// "CAP_NET_BIND_SERVICE"; it has no others, even as root.
	Caps []string `json:"caps,omitempty"`
	// Rlimits are set by the init before it starts the application (its
	// exec sessions inherit them): a container's process.rlimits.
	Rlimits []Rlimit `json:"rlimits,omitempty"`
	// Hosts are extra /etc/hosts entries (nos run --add-host).
	Hosts []Host `json:"hosts,omitempty"`

	// IO says the host wired PortIO; the fields below need it.
	IO bool `json:"io,omitempty"`
	// Stdin: the application reads its stdin from FrameStdin of session
	// 0 (nos run -i); otherwise its stdin is /dev/null.
	Stdin bool `json:"stdin,omitempty"`
	// TTY runs the application on a terminal of Rows × Cols (nos run -t).
	TTY  bool   `json:"tty,omitempty"`
	Rows uint16 `json:"rows,omitempty"`
	Cols uint16 `json:"cols,omitempty"`
	// NoExec refuses TypeExec (an image built with nos build --no-exec).
	NoExec bool `json:"noExec,omitempty"`
	// Files are small files placed in the application's root once it is
	// in place, after the network: copies of the files container engines
	// bind-mount (/etc/hosts, /etc/resolv.conf, ...). See File.
	Files []File `json:"files,omitempty"`
}

// File is a file the init places at Path as a read-write bind mount of a
// copy on its /run tmpfs (as an engine's bind mount would be): the root's
// own file is not changed; a missing one is created empty as the mount
// point on a writable root. At most MaxFiles of them, each at most
// MaxFileSize bytes.
type File struct {
	Path string `json:"path"`
	Mode uint32 `json:"mode,omitempty"` // permission bits; 0 is 0644
	Data []byte `json:"data,omitempty"`
}

// Bounds of Config.Files.
const (
	MaxFiles    = 16
	MaxFileSize = 64 << 10
)

// ErrFile marks a File the init refuses.
var ErrFile = errors.New("want an absolute, clean path outside /proc, /sys and /dev, at most 64 KiB")

// Check reports whether the init can place f.
func (f File) Check() error {
	p := f.Path
	if !path.IsAbs(p) || path.Clean(p) != p || p == "/" || strings.ContainsRune(p, 0) || len(f.Data) > MaxFileSize || f.Mode > 0o7777 {
		return fmt.Errorf("file %q: %w", p, ErrFile)
	}
	for _, k := range []string{"/proc", "/sys", "/dev"} {
		if p == k || strings.HasPrefix(p, k+"/") {
			return fmt.Errorf("file %q: %w", p, ErrFile)
		}
	}
	return nil
}

// Root is a root filesystem on a block device.
type Root struct {
	Device string `json:"device"` // e.g. "/dev/vda"
	FSType string `json:"fsType"` // e.g. "erofs"
	// Serial, when set, names the disk (its virtio serial): the init uses
	// the device with that serial, whatever its order.
	Serial string `json:"serial,omitempty"`
	// Writable puts the read-only filesystem under an overlay whose upper
	// layer is a tmpfs, as a container's writable layer: the application
	// can change any file, and every change is lost when the VM stops.
	Writable bool `json:"writable,omitempty"`
	// PartLabel, when set, names the root by its GPT partition name (what
	// the kernel reports as PARTNAME): an exported disk's root partition,
	// whatever the disk's bus (virtio-blk, SCSI, NVMe) calls it.
	PartLabel string `json:"partLabel,omitempty"`
	// TmpfsSize caps the writable layer, in bytes; 0 is
	// DefaultRootTmpfsPercent of the guest's memory.
	TmpfsSize int64 `json:"tmpfsSize,omitempty"`
	// Tag, when set, makes the root a host directory shared over virtiofs
	// with this tag (an OCI bundle's rootfs) rather than a block device:
	// Device, Serial and PartLabel are then unused, and Writable mounts
	// the share itself read-write (changes land in the host directory, as
	// a container's do) instead of putting an overlay over it. The mount
	// points the init moves into the root (/dev, /proc, /sys, /run, /tmp)
	// are made in it when missing.
	Tag string `json:"tag,omitempty"`
}

// DefaultRootTmpfsPercent is the default cap of a writable root's upper
// layer, in percent of the guest's memory (tmpfs's own "size=N%"): its
// pages live in RAM, and a guest has no swap.
const DefaultRootTmpfsPercent = 25

// Tmpfs is one extra tmpfs mount.
type Tmpfs struct {
	// Path is where it is mounted: absolute and clean; created when missing.
	Path string `json:"path"`
	// Size caps it, in bytes; 0 is the kernel's default, half the memory.
	Size int64 `json:"size,omitempty"`
	// Mode is its root directory's permissions; 0 is 01777, as /tmp.
	Mode uint32 `json:"mode,omitempty"`
}

// Host is one /etc/hosts entry: Name resolves to IP in the guest.
type Host struct {
	Name string `json:"name"`
	IP   string `json:"ip"`
}

// Rlimit is a resource limit: Type is the kernel's name (RLIMIT_NOFILE,
// RLIMIT_NPROC, ...; RlimitNames lists them).
type Rlimit struct {
	Type string `json:"type"`
	Soft uint64 `json:"soft"`
	Hard uint64 `json:"hard"`
}

// RlimitNames are the limits an init sets, in the kernel's order.
var RlimitNames = []string{"RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS",
	"RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS", "RLIMIT_SIGPENDING",
	"RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME"}

// Mount is a file system the init mounts for the application after the
// root is in place: a named volume on a block device, or a host
// directory over virtiofs.
type Mount struct {
	Serial string `json:"serial,omitempty"` // the disk's virtio serial (ext4)
	// Tag is the virtiofs tag of a shared host directory (FSType
	// "virtiofs"), which has no disk.
	Tag      string `json:"tag,omitempty"`
	Target   string `json:"target"` // absolute path in the guest
	FSType   string `json:"fsType"` // "ext4" or "virtiofs"
	ReadOnly bool   `json:"readOnly,omitempty"`
	// CopyUp: the volume is new and empty; before mounting it, the init
	// copies what the image holds at Target into it, with owners and
	// modes, and gives its root the owner and mode of Target (or the
	// application's user when the image has no Target), as docker does.
	CopyUp bool `json:"copyUp,omitempty"`
}

// User is a numeric user, group and supplementary groups.
type User struct {
	UID    uint32   `json:"uid"`
	GID    uint32   `json:"gid"`
	Groups []uint32 `json:"groups,omitempty"`
}

// Network is the guest's static network configuration, chosen by the runner.
type Network struct {
	Interface string `json:"interface"` // e.g. "eth0"
	// MAC, when set, finds the interface by hardware address rather than
	// by name (the order NICs probe in is the guest kernel's business).
	MAC     string   `json:"mac,omitempty"`
	Address string   `json:"address"` // CIDR, e.g. "10.0.2.15/24"
	Gateway string   `json:"gateway,omitempty"`
	DNS     []string `json:"dns,omitempty"`
	// DHCP, when set, takes the address, gateway and DNS servers from a
	// DHCP server on the NIC (a cloud's, or QEMU's user-mode network's)
	// instead of Address, Gateway and DNS: an exported disk's guest has
	// no nos host that knows its address. Interface and MAC still name
	// the NIC; with neither, it is the first one that appears.
	DHCP bool `json:"dhcp,omitempty"`
}

// Exit codes the init reports when the application could not run, as
// shells and docker use them.
const (
	ExitCannotExecute = 126
	ExitNotFound      = 127
)

// ErrTmpfsPath is why a tmpfs mount point is refused.
var ErrTmpfsPath = errors.New("want an absolute, clean path other than /, outside /proc, /sys and /dev")

// CheckPath refuses a mount point the init cannot or must not mount a
// tmpfs on: relative or unclean paths ("..", "//"), the root itself, and
// the kernel's filesystems the init set up. The host checks it when the
// flag is parsed, the guest again before mounting.
func (t Tmpfs) CheckPath() error {
	p := t.Path
	if !path.IsAbs(p) || path.Clean(p) != p || p == "/" {
		return fmt.Errorf("tmpfs mount point %q: %w", p, ErrTmpfsPath)
	}
	for _, k := range []string{"/proc", "/sys", "/dev"} {
		if p == k || strings.HasPrefix(p, k+"/") {
			return fmt.Errorf("tmpfs mount point %q: %w", p, ErrTmpfsPath)
		}
	}
	return nil
}
