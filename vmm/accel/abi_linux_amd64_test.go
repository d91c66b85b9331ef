package accel

import (
	"testing"
	"unsafe"
)

func TestStructLayout(t *testing.T) {
	tests := []struct {
		name      string
		got, want uintptr
	}{
		{"sizeof(kvm_regs)", unsafe.Sizeof(regs{}), 144},
		{"sizeof(kvm_segment)", unsafe.Sizeof(segment{}), 24},
		{"sizeof(kvm_dtable)", unsafe.Sizeof(dtable{}), 16},
		{"sizeof(kvm_sregs)", unsafe.Sizeof(sregs{}), 312},
		{"sizeof(kvm_userspace_memory_region)", unsafe.Sizeof(userspaceMemoryRegion{}), 32},
		{"offsetof(kvm_regs.rip)", unsafe.Offsetof(regs{}.RIP), 128},
		{"offsetof(kvm_regs.rflags)", unsafe.Offsetof(regs{}.RFLAGS), 136},
		{"offsetof(kvm_sregs.gdt)", unsafe.Offsetof(sregs{}.GDT), 192},
		{"offsetof(kvm_sregs.cr0)", unsafe.Offsetof(sregs{}.CR0), 224},
		{"offsetof(kvm_sregs.apic_base)", unsafe.Offsetof(sregs{}.APICBase), 272},
		{"offsetof(kvm_sregs.interrupt_bitmap)", unsafe.Offsetof(sregs{}.InterruptBitmap), 280},
		{"offsetof(kvm_userspace_memory_region.userspace_addr)", unsafe.Offsetof(userspaceMemoryRegion{}.UserspaceAddr), 24},
		{"offsetof(kvm_run.immediate_exit)", unsafe.Offsetof(runHeader{}.ImmediateExit), 1},
		{"offsetof(kvm_run.exit_reason)", unsafe.Offsetof(runHeader{}.ExitReason), 8},
		{"offsetof(kvm_run.cr8)", unsafe.Offsetof(runHeader{}.CR8), 16},
		{"sizeof(kvm_run head)", unsafe.Sizeof(runHeader{}), exitUnionOffset},
		{"offsetof(kvm_run.io.port)", unsafe.Offsetof(runIO{}.Port), 2},
		{"offsetof(kvm_run.io.count)", unsafe.Offsetof(runIO{}.Count), 4},
		{"offsetof(kvm_run.io.data_offset)", unsafe.Offsetof(runIO{}.DataOffset), 8},
		{"offsetof(kvm_run.mmio.len)", unsafe.Offsetof(runMMIO{}.Len), 16},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %d, want %d", tt.name, tt.got, tt.want)
		}
	}
}

// TestIoctlNumbers checks the request numbers against the values the C
// macros give on x86-64.
func TestIoctlNumbers(t *testing.T) {
	tests := []struct {
		name      string
		got, want uintptr
	}{
		{"KVM_GET_API_VERSION", kvmGetAPIVersion, 0xae00},
		{"KVM_CREATE_VM", kvmCreateVM, 0xae01},
		{"KVM_GET_VCPU_MMAP_SIZE", kvmGetVCPUMmapSize, 0xae04},
		{"KVM_CREATE_VCPU", kvmCreateVCPU, 0xae41},
		{"KVM_SET_USER_MEMORY_REGION", kvmSetUserMemoryRegion, 0x4020ae46},
		{"KVM_RUN", kvmRun, 0xae80},
		{"KVM_SET_REGS", kvmSetRegs, 0x4090ae82},
		{"KVM_GET_SREGS", kvmGetSregs, 0x8138ae83},
		{"KVM_SET_SREGS", kvmSetSregs, 0x4138ae84},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %#x, want %#x", tt.name, tt.got, tt.want)
		}
	}
}

func TestCheckExit(t *testing.T) {
	ioExit := func(dir, size uint8, port uint16, count uint32, value byte) []byte {
		run := make([]byte, 2*pageSize)
		(*runHeader)(unsafe.Pointer(&run[0])).ExitReason = exitIO
		*(*runIO)(unsafe.Pointer(&run[exitUnionOffset])) = runIO{
			Direction: dir, Size: size, Port: port, Count: count, DataOffset: pageSize,
		}
		run[pageSize] = value
		return run
	}
	other := func(reason uint32) []byte {
		run := make([]byte, 2*pageSize)
		(*runHeader)(unsafe.Pointer(&run[0])).ExitReason = reason
		return run
	}
	if err := checkExit(ioExit(exitIOOut, 1, 0xf4, 1, 0x42)); err != nil {
		t.Errorf("expected exit: %v", err)
	}
	for name, run := range map[string][]byte{
		"wrong value": ioExit(exitIOOut, 1, 0xf4, 1, 0x41),
		"wrong port":  ioExit(exitIOOut, 1, 0xf5, 1, 0x42),
		"input":       ioExit(0, 1, 0xf4, 1, 0x42),
		"hlt":         other(exitHLT),
		"shutdown":    other(exitShutdown),
		"fail entry":  other(exitFailEntry),
		"internal":    other(exitInternalError),
		"mmio":        other(exitMMIO),
		"unknown":     other(999),
	} {
		if err := checkExit(run); err == nil {
			t.Errorf("%s: no error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}
