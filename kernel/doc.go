// Package kernel finds the Linux kernel a nos image boots and the modules
// its init must load.
//
// A kernel comes from a [Finder]: an explicit file ([File]), the host's /boot
// ([Host]) or nos's own cache ([Cache]), tried in order by a [Chain]. [Fetch]
// fills the cache with a Debian kernel package using apt-get and dpkg-deb.
//
// For modular kernels, [Modules] resolves a list of wanted module names to
// the module files to put in the initramfs, dependencies first, reading each
// module's dependencies from its ELF .modinfo section ([ReadModinfo]).
package kernel
