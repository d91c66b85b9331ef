// Package store keeps nos images in a local content-addressed store laid
// out as an OCI image layout:
//
//	<root>/oci-layout          {"imageLayoutVersion":"1.0.0"}
//	<root>/index.json          an OCI image index naming every image
//	<root>/blobs/sha256/<hex>  manifests, configs, kernels and initramfs
//	<root>/tmp/                private: blobs being ingested
//	<root>/lock                private: flock(2) serialising writers
//
// Each image is an entry of index.json whose annotation
// org.opencontainers.image.ref.name holds "name:tag". Blobs are written to
// tmp/ and renamed into blobs/ once complete, and index.json is replaced
// atomically, so a process killed at any point leaves the store readable.
//
// Every change to index.json and every removal of blobs happens under an
// exclusive lock on <root>/lock; readers take a shared lock. Methods whose
// name ends in "Locked" expect the caller to hold [Store.Lock]; the others
// take the lock they need themselves. The locks are not reentrant: calling
// a locking method while holding Lock blocks until its context ends.
package store
