// Package kbuild builds nos's own Linux kernel and keeps the kernels it
// built or imported.
//
// [Build] compiles a module-free kernel from a kernel source tree — by
// default the tarball of Debian's linux-source package in /usr/src, or a
// directory or tarball given — configured with `make tinyconfig` and the
// fragments of package [github.com/nosproject/nos/kernel/config]. After
// `make olddefconfig` it checks that every option the fragments set
// survived, then runs `make bzImage`, reporting progress to an io.Writer.
//
// Results live in a [Cache], one directory per kernel named by a key that
// digests the inputs (the source, the merged fragments, the compiler), so
// building the same kernel again is instant. Entries appear complete or not
// at all: a failed build leaves nothing behind. [Cache.Import] adds a
// kernel image built elsewhere. A Cache is a [github.com/nosproject/nos/kernel.Finder]
// whose kernel is the one built or imported last; it has no modules
// directory, so images built with it load no modules.
package kbuild
