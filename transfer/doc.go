// Package transfer moves nos images between the store and the outside
// world: to and from OCI distribution registries (Push, Pull) and OCI
// image-layout tarballs (Save, Load), and keeps registry credentials
// where docker keeps them (Login, Logout).
//
// An image travels as an OCI artefact: an image manifest whose
// artifactType is image.ArtifactType, whose config and layers keep nos's
// media types, and whose annotations (image.Annotations) say what it is.
//
// Whatever comes in is checked before the store sees it: the manifest's
// digest, then every blob's digest and size as it is copied into the
// store's tmp/ (store.Pending). Only when all of them are good are the
// blobs committed and the image tagged, under the store's lock, so a
// transfer that fails or is killed leaves the store as it was. Blobs the
// store already holds intact are not transferred again.
//
// The package prints nothing: progress goes to a callback and failures
// come back as errors of one line.
package transfer
