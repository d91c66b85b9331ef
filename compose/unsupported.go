package compose

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
)

// keys are the Compose keys nos maps, by their YAML names: a nil value
// maps the key and all it holds, a non-nil one only the keys it lists.
// Any other key that is set gets a warning (an error with --strict), so
// nothing in a file is ignored silently. The lists are checked against
// compose-go's types by reflection, so a key compose-go adds is reported
// until nos maps it.
type keys map[string]keys

var (
	serviceKeys = keys{
		"name": nil, "image": nil, "build": {"context": nil}, "command": nil, "entrypoint": nil,
		"environment": nil, "env_file": nil, "ports": {"target": nil, "published": nil, "host_ip": nil, "protocol": nil, "mode": nil},
		"expose": nil, "volumes": {"type": nil, "source": nil, "target": nil, "read_only": nil, "bind": {"create_host_path": nil}, "volume": {}, "tmpfs": {"size": nil, "mode": nil}},
		"networks":     {"aliases": nil, "ipv4_address": nil, "priority": nil},
		"network_mode": nil, "depends_on": {"condition": nil, "required": nil},
		"healthcheck": {"test": nil, "interval": nil, "timeout": nil, "retries": nil, "start_period": nil, "disable": nil},
		"restart":     nil, "mem_limit": nil, "cpus": nil, "user": nil, "labels": nil, "cap_add": nil, "extra_hosts": nil,
		"container_name": nil, "read_only": nil, "tmpfs": nil, "stop_grace_period": nil,
		"profiles": nil, "extends": nil, "init": nil, "scale": nil,
		"deploy": {"replicas": nil, "resources": {"limits": {"cpus": nil, "memory": nil}}, "restart_policy": {"condition": nil, "max_attempts": nil}},
	}
	networkKeys = keys{"name": nil, "external": nil, "internal": nil, "ipam": {"config": {"subnet": nil, "gateway": nil}}}
	volumeKeys  = keys{"name": nil, "external": nil}
	projectKeys = keys{"name": nil, "services": nil, "networks": nil, "volumes": nil}
)

// normalizedForCheck drops what compose-go's normalization sets by
// itself, so that only what the file says is checked.
func normalizedForCheck(sc types.ServiceConfig) types.ServiceConfig {
	if sc.Build != nil && sc.Build.Dockerfile == "Dockerfile" {
		b := *sc.Build
		b.Dockerfile = "" // the default compose-go fills in; nos builds no Dockerfile
		sc.Build = &b
	}
	if sc.Volumes != nil {
		vs := slices.Clone(sc.Volumes)
		for i := range vs {
			if vs[i].Bind != nil && vs[i].Bind.CreateHostPath {
				b := *vs[i].Bind
				b.CreateHostPath = false
				vs[i].Bind = &b
			}
		}
		sc.Volumes = vs
	}
	return sc
}

// unsupportedKeys lists the keys set in v (a compose-go struct) that ok
// does not map, as `key "a.b" is not supported; ignored`.
func unsupportedKeys(prefix string, v any, ok keys) []string {
	seen := map[string]bool{}
	walkKeys(prefix, reflect.ValueOf(v), ok, seen)
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	for i, k := range out {
		out[i] = fmt.Sprintf("key %q is not supported; ignored", k)
	}
	return out
}

func walkKeys(prefix string, v reflect.Value, ok keys, seen map[string]bool) {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			walkKeys(prefix, v.Index(i), ok, seen)
		}
		return
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			walkKeys(prefix+fmt.Sprint(it.Key().Interface())+".", it.Value(), ok, seen)
		}
		return
	case reflect.Struct:
	default:
		return
	}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if f.Anonymous && tag == "" {
			walkKeys(prefix, v.Field(i), ok, seen) // an inlined part (ContainerSpec, WorkloadSpec)
			continue
		}
		if tag == "" || tag == "-" || strings.HasPrefix(tag, "#") || v.Field(i).IsZero() {
			continue // not a key of the file, an x- extension, or not set
		}
		sub, known := ok[tag]
		switch {
		case !known:
			seen[strings.TrimSuffix(keyPath(prefix, tag), ".")] = true
		case sub != nil:
			walkKeys(keyPath(prefix, tag)+".", v.Field(i), sub, seen)
		}
	}
}

// keyPath names a key under prefix, leaving out the names of map entries
// (services' network names) that the warning's prefix already gives.
func keyPath(prefix, key string) string { return prefix + key }
