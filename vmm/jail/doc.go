// Package jail confines a hypervisor process, whatever the hypervisor:
// a cgroup of its own with memory and CPU limits (cgroup v2, or the v1
// memory and cpu hierarchies where that is what the host has), rlimits set
// on the running process, and the descriptors a child would inherit by
// accident closed. Each step that cannot be taken on this host is
// reported, never skipped silently.
package jail
