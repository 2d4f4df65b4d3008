// The component's exports, written by hand: `wit-bindgen go` output needs the Go module
// go.bytecodealliance.org/pkg, which only the Go module proxy serves and this project cannot reach,
// so this file lifts and lowers the canonical ABI of wit/v0.1.0's `admission` interface itself.
// The offsets below are the canonical ABI layout of `admission-request` and `admission-response`;
// The shared case suite (tests/cases/require-labels) exercises the fields read here.
//
// `go vet` reports "possible misuse of unsafe.Pointer" on the uintptr-to-pointer conversions: they
// are deliberate, since the canonical ABI speaks in linear-memory addresses, and Go's collector
// does not move objects on wasm (what is handed out is also kept reachable, below).
//
// Every call runs in a fresh instance that is thrown away afterwards, so memory handed to the
// host is never freed (there is no post-return to write).

package corbel

import (
	"unsafe"
)

// All memory handed across the component boundary comes from this arena, through cabi_realloc:
// the host allocates the parameters of `validate` and `mutate` there (more than 16 flat values,
// so passed in memory), and so does the WASI preview1 adapter for its state. It is a static array,
// not a Go heap object, so it exists before the Go runtime starts (the adapter allocates during
// `_initialize`), and no allocation here re-enters the Go heap. The adapter must not take memory
// with memory.grow instead: Go's allocator assumes it owns every page it did not grow itself.
var (
	arena     [8 << 20]byte
	arenaUsed uintptr
)

//go:wasmexport cabi_realloc
func cabiRealloc(old, oldSize, align, newSize uint32) uint32 {
	base := uintptr(unsafe.Pointer(&arena[0]))
	start := (base + arenaUsed + uintptr(align) - 1) &^ (uintptr(align) - 1)
	end := start + uintptr(newSize)
	if end > base+uintptr(len(arena)) {
		panic("corbel: the request is larger than the 8 MiB arena")
	}
	if old != 0 && oldSize != 0 {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(start)), oldSize), unsafe.Slice((*byte)(unsafe.Pointer(uintptr(old))), oldSize))
	}
	arenaUsed = end - base
	return uint32(start)
}

func u8(p uintptr) uint8   { return *(*uint8)(unsafe.Pointer(p)) }
func u32(p uintptr) uint32 { return *(*uint32)(unsafe.Pointer(p)) }

func str(p uintptr) string {
	ptr, n := u32(p), u32(p+4)
	if n == 0 {
		return ""
	}
	return unsafe.String((*byte)(unsafe.Pointer(uintptr(ptr))), n)
}

// option<string>: a discriminant byte, then the string at offset 4.
func optStr(p uintptr) (string, bool) {
	if u8(p) == 0 {
		return "", false
	}
	return str(p + 4), true
}

func strList(p uintptr) []string {
	ptr, n := uintptr(u32(p)), int(u32(p+4))
	out := make([]string, n)
	for i := range out {
		out[i] = str(ptr + uintptr(i)*8)
	}
	return out
}

// What the host reads after a call; kept reachable so the collector leaves it alone.
var (
	retArea [44]byte
	keep    []any
)

func ret() uintptr { return uintptr(unsafe.Pointer(&retArea[0])) }

func putU8(p uintptr, v uint8)   { *(*uint8)(unsafe.Pointer(p)) = v }
func putU16(p uintptr, v uint16) { *(*uint16)(unsafe.Pointer(p)) = v }
func putU32(p uintptr, v uint32) { *(*uint32)(unsafe.Pointer(p)) = v }

func putStr(p uintptr, s string) {
	keep = append(keep, s)
	putU32(p, uint32(uintptr(unsafe.Pointer(unsafe.StringData(s)))))
	putU32(p+4, uint32(len(s)))
}

func putErr(message string) uint32 {
	clear(retArea[:])
	putU8(ret(), 1)
	putStr(ret()+4, message)
	return uint32(ret())
}

//go:wasmexport corbel:plugin/admission@0.1.0#validate-settings
func exportValidateSettings(ptr, n uint32) uint32 {
	// A lone string travels as two flat parameters: its pointer and length.
	settings := ""
	if n > 0 {
		settings = unsafe.String((*byte)(unsafe.Pointer(uintptr(ptr))), n)
	}
	if err := validateSettings(settings); err != nil {
		return putErr(err.Error())
	}
	clear(retArea[:])
	return uint32(ret())
}

// Offsets in the parameters of validate/mutate: the admission-request record, then the settings.
const (
	offUID       = 0
	offKind      = 8 // group, version, kind: three strings
	offResource  = 32
	offSubRes    = 56
	offOperation = 136
	offNamespace = 140
	offName      = 152
	offObject    = 164
	offOldObject = 176
	offUserInfo  = 188 // username, uid, groups, extra
	offDryRun    = 220
	offOptions   = 224
	offSettings  = 236
)

func requestAt(p uintptr) (*Request, error) {
	r := &Request{
		UID:       str(p + offUID),
		Kind:      GroupVersionKind{str(p + offKind), str(p + offKind + 8), str(p + offKind + 16)},
		Resource:  str(p + offResource + 16),
		Operation: [...]string{"CREATE", "UPDATE", "DELETE", "CONNECT"}[u8(p+offOperation)&3],
		Username:  str(p + offUserInfo),
		Groups:    strList(p + offUserInfo + 16),
		DryRun:    u8(p+offDryRun) != 0,
	}
	r.SubResource, _ = optStr(p + offSubRes)
	r.Namespace, _ = optStr(p + offNamespace)
	r.Name, _ = optStr(p + offName)
	for _, field := range []struct {
		off  uintptr
		name string
		into *document
	}{{offObject, "object", &r.object}, {offOldObject, "oldObject", &r.oldObject}, {offOptions, "options", &r.options}} {
		if text, ok := optStr(p + field.off); ok {
			if err := checkObject(field.name, text, field.into); err != nil {
				return nil, err
			}
		}
	}
	return r, nil
}

func call(p uint32, mutating bool) uint32 {
	params := uintptr(p)
	request, err := requestAt(params)
	if err != nil {
		return putErr(err.Error())
	}
	verdict, err := evaluate(request, str(params+offSettings), mutating)
	// The checks go to the host with a denial or an error only (log.go).
	flushChecks(err != nil || !verdict.Allowed)
	if err != nil {
		return putErr(err.Error())
	}
	clear(retArea[:])
	r := ret() + 4 // the admission-response, after the result's discriminant
	if verdict.Allowed {
		putU8(r, 1)
	}
	if verdict.Message != "" {
		putU8(r+4, 1)
		putStr(r+8, verdict.Message)
	}
	if verdict.Code != 0 {
		putU8(r+16, 1)
		putU16(r+18, verdict.Code)
	}
	if n := len(verdict.Warnings); n > 0 {
		list := make([]uint32, 2*n)
		keep = append(keep, list)
		for i, w := range verdict.Warnings {
			putStr(uintptr(unsafe.Pointer(&list[2*i])), w)
		}
		putU32(r+20, uint32(uintptr(unsafe.Pointer(&list[0]))))
		putU32(r+24, uint32(n))
	}
	if mutating && verdict.Mutated != "" {
		putU8(r+28, 1)
		putStr(r+32, verdict.Mutated)
	}
	return uint32(ret())
}

//go:wasmexport corbel:plugin/admission@0.1.0#validate
func exportValidate(p uint32) uint32 { return call(p, false) }

//go:wasmexport corbel:plugin/admission@0.1.0#mutate
func exportMutate(p uint32) uint32 { return call(p, true) }
