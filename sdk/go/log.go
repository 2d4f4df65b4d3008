// Logging into the host's log, and the check helper of "why denied" traces (docs/trace.md).
//
// The `log` import of wit/v0.1.0 (`corbel:plugin/log@0.1.0`), lowered by hand like abi.go's
// exports: `log: func(level: level, message: string, fields: list<field>)` has five flat
// parameters, the enum's discriminant, the message's pointer and length, and the list's pointer
// and length; each `field` record is two strings, 16 bytes in memory (key pointer, key length,
// value pointer, value length), aligned to 4. The host reads the memory during the call and keeps
// nothing, so what is passed only has to stay alive until the call returns.
//
// build.sh snapshots the module with Wizer, which links only WASI: it gives Wizer a stub of this
// import (sdk/go/log-stub.wat) that traps if called, which it cannot be while `init` runs unless a
// policy logs from its `init`, which it must not (the snapshot has no host to log to).

package corbel

import (
	"runtime"
	"unsafe"
)

//go:wasmimport corbel:plugin/log@0.1.0 log
func hostLog(level uint32, message unsafe.Pointer, messageLen uint32, fields unsafe.Pointer, fieldsLen uint32)

// Level is a log record's level, in the order of the WIT enum `level`.
type Level uint32

const (
	LevelTrace Level = iota
	LevelDebug
	LevelInfo
	LevelWarn
	LevelError
)

// Field is a structured field of a log record.
type Field struct{ Key, Value string }

// Log writes one record into the host's log, tagged there with the plugin and binding; records
// below the host's log level are dropped cheaply, but a traced request (`corbel eval --trace`, a
// binding with `trace: true`) keeps them all. Do not log from an init function: it runs when the
// component is built, where there is no host.
func Log(level Level, message string, fields ...Field) {
	var flat []uint32
	if len(fields) > 0 {
		flat = make([]uint32, 4*len(fields))
		for i, f := range fields {
			flat[4*i] = uint32(uintptr(unsafe.Pointer(unsafe.StringData(f.Key))))
			flat[4*i+1] = uint32(len(f.Key))
			flat[4*i+2] = uint32(uintptr(unsafe.Pointer(unsafe.StringData(f.Value))))
			flat[4*i+3] = uint32(len(f.Value))
		}
	}
	var list unsafe.Pointer
	if len(flat) > 0 {
		list = unsafe.Pointer(&flat[0])
	}
	hostLog(uint32(level), unsafe.Pointer(unsafe.StringData(message)), uint32(len(message)), list, uint32(len(fields)))
	// The field records hold the strings' addresses as plain integers: keep them alive until here.
	runtime.KeepAlive(fields)
	runtime.KeepAlive(flat)
	runtime.KeepAlive(message)
}

// checkMessage is the message of the log record that carries checks (the host's
// corbel_runtime::trace): one field per check, its key the check's name and its value `pass` or
// `fail`, then `: detail` if any.
const checkMessage = "corbel.check"

type checkRecord struct {
	name, detail string
	passed       bool
}

// The checks of the current call, sent with its answer (see Check).
var checks []checkRecord

// Check records a named check and its result, and returns passed, so that it fits inside a
// condition:
//
//	if !corbel.Check("label "+l, ok, "") { missing = append(missing, l) }
//
// When the host traces the request (`corbel eval --trace`, a binding with `trace: true`), a
// denial then says which check failed and why (docs/trace.md). As in the Rust SDK, the checks
// stay in the sandbox and go to the host in one log record with the answer, only when the
// answer is a denial or an error: an admitted request makes no host call for them.
func Check(name string, passed bool, detail string) bool {
	checks = append(checks, checkRecord{name, detail, passed})
	return passed
}

// flushChecks sends the call's checks to the host when send, and forgets them either way.
func flushChecks(send bool) {
	recorded := checks
	checks = nil
	if !send || len(recorded) == 0 {
		return
	}
	fields := make([]Field, len(recorded))
	for i, c := range recorded {
		value := "pass"
		if !c.passed {
			value = "fail"
		}
		if c.detail != "" {
			value += ": " + c.detail
		}
		fields[i] = Field{c.name, value}
	}
	Log(LevelDebug, checkMessage, fields...)
}
