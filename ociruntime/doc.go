// Package ociruntime is nos-runtime: an OCI runtime with runc's command
// line that runs a container bundle as a nos microVM, so that podman
// (through conmon), containerd's runc shim and docker can run containers
// as VMs.
//
// One binary: nos answers to argv[0] "nos-runtime" (install a symlink,
// `ln -s nos /usr/local/bin/nos-runtime`, and give engines its path).
// Keeping one program means one thing to install and upgrade, the same
// nos-init lookup as nos build (beside the executable), and the helpers
// nos re-executes itself as (virtiofs's read-only share helper, the
// runtime's supervisor) work unchanged.
//
// Commands: create, start, state, kill, delete, features, list, ps, with
// runc's global flags --root (default /run/nos-runtime; for a non-root
// user $XDG_RUNTIME_DIR/nos-runtime), --log, --log-format text|json
// (errors are also appended there, as JSON lines
// {"level":"error","msg":…,"time":…} that containerd's shim reads back),
// --debug, --version, and --systemd-cgroup, which is accepted and
// ignored: the VM's memory and vCPUs come from config.json and QEMU is
// not put in the engine's cgroup yet. pause, resume, update, checkpoint
// and restore are refused with an error saying so. exec (exec.go) runs a
// process in the guest beside the app. An unknown
// id is an error containing "does not exist", which podman and
// containerd match.
//
// ps [--format table|json] ID lists the container's host processes, as
// runc lists the container's: the supervisor first, then its descendants
// (virtiofsd and its sandboxed child, QEMU); json prints their pids as a
// JSON array, table a PID PPID CMD table. A created container has the
// supervisor alone, a stopped one none. The guest's own processes (the
// app, what it starts, nos-init) run in the VM's kernel: they are not
// host processes and have no host pids.
//
// How a bundle runs:
//
//   - create parses config.json with the runtime-spec types and validates
//     it (ParseConfig, Validate), turns it into a Plan (MakePlan: the
//     rootfs, process args, env, cwd, uid/gid, hostname, capabilities;
//     linux.resources.memory.limit becomes the VM's memory, with a floor
//     of MinMemoryMiB, and the CPU quota its vCPUs), finds the guest
//     kernel (NOS_RUNTIME_KERNEL, else nos's built kernel with the blk and
//     net features) and nos-init (NOS_RUNTIME_INIT, else as nos build finds
//     it), makes the guest's initramfs (nos-init alone, cached in the
//     root), and starts the supervisor; its pid goes to --pid-file.
//
//   - The supervisor (see supervisor.go) is a child of create in a
//     session of its own that keeps create's stdin, stdout and stderr
//     (conmon's pipes): the app's output goes there. It lives as long as
//     the workload and exits with the app's exit code. It serves start and
//     kill on a unix socket in ROOT/ID.
//
//   - start boots the VM: QEMU microvm with the bundle's rootfs shared by
//     virtiofsd as the guest's root (read-write unless root.readonly),
//     where nos-init runs the process. The VM boots at start, not at
//     create: create stays fast and an engine that creates without
//     starting holds no VM.
//
//   - kill SIGNAL goes to the app through nos-init; KILL forces the VM
//     off (exit 137). delete removes the state; QEMU and virtiofsd run
//     under Pdeathsig and die with the supervisor.
//
//   - The container's network namespace becomes the VM's NIC at start
//     (network.go): a tap beside the engine's veth, tc redirects both
//     ways, the veth's MAC, address and gateway and the bundle's DNS
//     servers as the guest's static configuration. A new namespace asked
//     for without a path (docker, ctr) is the supervisor's own (it starts
//     with CLONE_NEWNET), where docker's prestart hook puts its veth.
//
//   - A terminal (process.terminal; the engine's -t): create needs
//     --console-socket (and refuses it without process.terminal, as runc
//     does), makes a pty pair through /dev/ptmx, sizes it by
//     process.consoleSize, and sends the master over the socket in one
//     message with SCM_RIGHTS (console_linux.go). The slave, set raw, is
//     the supervisor's stdin, stdout, stderr and controlling terminal;
//     the VM gets the nos.io port and guestapi.Config IO, Stdin, TTY with
//     the slave's size at start (else consoleSize). nos-init runs the app
//     on a terminal of its own in the guest, which echoes, edits lines and
//     turns Ctrl-C into SIGINT; the host slave only carries bytes: its
//     input goes to the app as FrameStdin, the app's output comes back on
//     the stdout port and is written to it. Resizes: the supervisor leads
//     the slave's session, so the kernel sends it SIGWINCH when the engine
//     sets the master's size; it reads the slave's size (TIOCGWINSZ) and
//     sends a FrameResize. A signal rather than polling: nothing runs
//     while the size holds, and no change is missed or late. When the
//     engine closes the master the hang-up (SIGHUP) is forwarded to the
//     app like any signal to the supervisor.
//
//   - Stdin without a terminal: when create's stdin (conmon's, the
//     shim's) is a pipe, FIFO or socket, the engine's -i, the supervisor
//     forwards it as FrameStdin and its end as FrameEOF (Config.Stdin);
//     /dev/null, what engines give without -i, is not forwarded and the
//     app's stdin is the guest's /dev/null.
//
// Mounts (config.json's mounts), by kind:
//
//   - Made by nos-init in every guest, whatever the entry says (not
//     noted): /proc, /dev, /dev/pts, /dev/shm, /dev/mqueue, /sys,
//     /sys/fs/cgroup, /run and /tmp. The engine's sources for them (docker
//     and podman bind a host directory as /dev/shm) are not used.
//   - Copied: bind mounts (type bind, or a bind/rbind option) at
//     /etc/hosts, /etc/hostname, /etc/resolv.conf and /run/.containerenv,
//     the files podman and docker make for a container. virtiofs shares
//     directories, so the supervisor reads each source at start (a
//     regular file of at most 64 KiB, 16 files at most; anything else
//     fails start) and sends its contents in the guest's config
//     (guestapi.Config.Files); nos-init, once the root is in place and
//     the network set up, writes the copy on its /run tmpfs and
//     bind-mounts it over the path (creating an empty mount point when
//     the root lacks one, as runc does). The guest sees the engine's
//     content; its writes stay in the guest and the root's own file is
//     unchanged; the engine's later edits of the host file (docker
//     network connect) are not seen.
//   - tmpfs mounts elsewhere (--tmpfs): made by nos-init, with the
//     entry's size= (bytes, k, m, g; a percentage is the kernel's
//     default) and mode=.
//   - Shared: other bind mounts whose source is a directory at start
//     (-v DIR:/path[:ro]) get a virtiofsd each (16 at most) and nos-init
//     mounts them; other sources are skipped with a warning in the
//     supervisor's log.
//   - Ignored, with a note in the plan (ROOT/ID/plan.json, the
//     supervisor's log): every other mount kind.
//
// Engines: podman (conmon) and containerd's runc shim (io.containerd.runc.v2,
// so ctr with --runc-binary and docker with --add-runtime) call
// `--root R --log L --log-format json [--systemd-cgroup] create --bundle B
// --pid-file P ID`, then start, state, kill ID SIGNAL (a number), delete
// and delete --force. The shim's cleanup after its task ends logs
// "failed to remove runc container … exit status 255" for runc too: it
// is the shim's, not the runtime's.
//
// Hooks: see hooks.go. Not yet: bind mounts of single files other than
// the copied ones, IPv6 in the guest (networking: see network.go).
package ociruntime
