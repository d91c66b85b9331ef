// Package export writes a stored image out for engines other than nos's
// own runner. Today that is libvirt (Libvirt): a domain XML and the files it
// names, for a guest that configures itself because no nos host is beside
// it.
//
// An export is written into a temporary directory beside its destination
// and renamed into place when complete: a failed export leaves nothing
// under the destination's name.
package export
