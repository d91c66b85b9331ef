package vmm

import "testing"

func TestDefaultTCGBufferMiB(t *testing.T) {
	for env, want := range map[string]int{"": TCGBufferMiB, "16": 16, "0": 0, "-4": TCGBufferMiB, "lots": TCGBufferMiB} {
		t.Setenv("NOS_TCG_BUFFER_MIB", env)
		if got := DefaultTCGBufferMiB(); got != want {
			t.Errorf("NOS_TCG_BUFFER_MIB=%q: %d, want %d", env, got, want)
		}
	}
}
