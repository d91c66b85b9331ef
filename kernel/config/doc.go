// Package config holds the Linux kernel configuration nos builds its own
// kernel from, and the code that reads, merges and checks kernel
// configurations.
//
// The configuration is a set of fragments embedded in nos: base.config,
// what every nos guest needs, and one fragment per optional feature
// (net.config, blk.config, vsock.config; see [Features]). [Fragments]
// selects them, [Merge] combines them into one [Config], [Overlay] lays that
// over the .config `make tinyconfig` wrote, and after the kernel's own
// `make olddefconfig` has resolved dependencies, [Check] verifies that every
// option the fragments set survived with the value they gave, naming the
// ones the kernel dropped or does not know.
//
// The syntax is the kernel's .config syntax: `CONFIG_FOO=value` lines,
// `# CONFIG_FOO is not set` for an option that is off, other `#` lines as
// comments.
package config
