// Package hoststoml is the node agent's writer: it points containerd at the node proxy by writing
// <certs.d>/<registry>/hosts.toml files, and takes them away again.
//
// Each file lists the proxy as the first host and the origin as `server`, so containerd
// falls back to the origin whenever the proxy does not answer. An existing hosts.toml is
// merged, not replaced: its hosts stay after the proxy, and the original bytes are kept
// next to it so that Cleanup can put them back exactly.
//
// Files kept next to each hosts.toml we manage:
//
//	hosts.toml.k8s-image-swapper.orig   the original file, byte for byte (when there was one)
//	hosts.toml.k8s-image-swapper.state  what we did: whether the file and folders existed
//
// containerd only reads hosts.toml and *.crt/*.cert/*.key files there, so both are inert.
package hoststoml
