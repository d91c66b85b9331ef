package accel

import "unsafe"

// The KVM ABI for linux/amd64, from <linux/kvm.h> and
// <asm/kvm.h> (Documentation/virt/kvm/api.rst).

// apiVersion is the only KVM API version there has ever been.
const apiVersion = 12

// ioctl request numbers: direction<<30 | size<<16 | type<<8 | number.
const (
	iocNone  = 0
	iocWrite = 1
	iocRead  = 2

	kvmio = 0xae

	kvmGetAPIVersion       = iocNone<<30 | kvmio<<8 | 0x00
	kvmCreateVM            = iocNone<<30 | kvmio<<8 | 0x01
	kvmGetVCPUMmapSize     = iocNone<<30 | kvmio<<8 | 0x04
	kvmCreateVCPU          = iocNone<<30 | kvmio<<8 | 0x41
	kvmSetUserMemoryRegion = iocWrite<<30 | unsafe.Sizeof(userspaceMemoryRegion{})<<16 | kvmio<<8 | 0x46
	kvmRun                 = iocNone<<30 | kvmio<<8 | 0x80
	kvmSetRegs             = iocWrite<<30 | unsafe.Sizeof(regs{})<<16 | kvmio<<8 | 0x82
	kvmGetSregs            = iocRead<<30 | unsafe.Sizeof(sregs{})<<16 | kvmio<<8 | 0x83
	kvmSetSregs            = iocWrite<<30 | unsafe.Sizeof(sregs{})<<16 | kvmio<<8 | 0x84
)

// Exit reasons (kvm_run.exit_reason).
const (
	exitIO            = 2
	exitHLT           = 5
	exitMMIO          = 6
	exitShutdown      = 8
	exitFailEntry     = 9
	exitInternalError = 17
)

// exitIOOut is kvm_run.io.direction for a guest OUT instruction.
const exitIOOut = 1

// userspaceMemoryRegion is struct kvm_userspace_memory_region.
type userspaceMemoryRegion struct {
	Slot          uint32
	Flags         uint32
	GuestPhysAddr uint64
	MemorySize    uint64
	UserspaceAddr uint64
}

// regs is struct kvm_regs.
type regs struct {
	RAX, RBX, RCX, RDX uint64
	RSI, RDI, RSP, RBP uint64
	R8, R9, R10, R11   uint64
	R12, R13, R14, R15 uint64
	RIP, RFLAGS        uint64
}

// segment is struct kvm_segment.
type segment struct {
	Base     uint64
	Limit    uint32
	Selector uint16
	Type     uint8
	Present  uint8
	DPL      uint8
	DB       uint8
	S        uint8
	L        uint8
	G        uint8
	AVL      uint8
	Unusable uint8
	_        uint8
}

// dtable is struct kvm_dtable.
type dtable struct {
	Base  uint64
	Limit uint16
	_     [3]uint16
}

// nrInterrupts is KVM_NR_INTERRUPTS.
const nrInterrupts = 256

// sregs is struct kvm_sregs.
type sregs struct {
	CS, DS, ES, FS, GS, SS segment
	TR, LDT                segment
	GDT, IDT               dtable
	CR0, CR2, CR3, CR4     uint64
	CR8                    uint64
	EFER                   uint64
	APICBase               uint64
	InterruptBitmap        [(nrInterrupts + 63) / 64]uint64
}

// runHeader is the fixed head of struct kvm_run, which the vCPU file
// descriptor maps; the exit-specific union follows at offset 32.
type runHeader struct {
	RequestInterruptWindow     uint8
	ImmediateExit              uint8
	_                          [6]uint8
	ExitReason                 uint32
	ReadyForInterruptInjection uint8
	IFFlag                     uint8
	Flags                      uint16
	CR8                        uint64
	APICBase                   uint64
}

// exitUnionOffset is the offset of the exit union in struct kvm_run.
const exitUnionOffset = 32

// runIO is kvm_run.io, the union member for exitIO. The data is at
// DataOffset bytes from the start of kvm_run.
type runIO struct {
	Direction  uint8
	Size       uint8
	Port       uint16
	Count      uint32
	DataOffset uint64
}

// runMMIO is kvm_run.mmio, the union member for exitMMIO.
type runMMIO struct {
	PhysAddr uint64
	Data     [8]uint8
	Len      uint32
	IsWrite  uint8
}
