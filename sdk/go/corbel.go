// Package corbel: Corbel admission policies in Go.
//
// Implement Policy, register it from an init function, and build with sdk/go/build.sh:
//
//	func init() { corbel.Register(requireLabels{}) }
//
// Every call runs in a fresh sandbox: keep no state between calls.
package corbel

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// WITVersion is the corbel:plugin version this SDK implements.
const WITVersion = "0.1.0"

type GroupVersionKind struct{ Group, Version, Kind string }

// Request is one admission request, with its objects parsed.
type Request struct {
	UID         string
	Kind        GroupVersionKind
	Resource    string // the plural name, such as "configmaps"
	SubResource string
	Operation   string // CREATE, UPDATE, DELETE or CONNECT
	Namespace   string
	Name        string
	Object      map[string]any // nil on DELETE
	OldObject   map[string]any // on UPDATE and DELETE
	Username    string
	Groups      []string
	DryRun      bool
	Options     map[string]any
}

// Subject is the object the request is about: the new object, or on DELETE the old one.
func (r *Request) Subject() map[string]any {
	if r.Object != nil {
		return r.Object
	}
	return r.OldObject
}

// Labels of Subject (empty when it has none).
func (r *Request) Labels() map[string]string { return Labels(r.Subject()) }

// Annotations of Subject (empty when it has none).
func (r *Request) Annotations() map[string]string { return stringMap(r.Subject(), "annotations") }

// Labels is metadata.labels of an object; only string values count, as in the Rust SDK.
func Labels(object map[string]any) map[string]string { return stringMap(object, "labels") }

func stringMap(object map[string]any, field string) map[string]string {
	out := map[string]string{}
	metadata, _ := object["metadata"].(map[string]any)
	values, _ := metadata[field].(map[string]any)
	for k, v := range values {
		if s, ok := v.(string); ok {
			out[k] = s
		}
	}
	return out
}

// Verdict is a policy's answer.
type Verdict struct {
	Allowed  bool
	Message  string
	Code     uint16 // 0: the host's default, 403
	Warnings []string
	Mutated  string // the changed object as JSON, for mutate
}

func Allow() Verdict                        { return Verdict{Allowed: true} }
func Deny(message string) Verdict           { return Verdict{Message: message} }
func Warn(warning string) Verdict           { return Verdict{Allowed: true, Warnings: []string{warning}} }
func Denyf(format string, a ...any) Verdict { return Deny(fmt.Sprintf(format, a...)) }

// Mutate admits the request with changed in place of the submitted object.
func Mutate(changed map[string]any) (Verdict, error) {
	text, err := json.Marshal(changed)
	if err != nil {
		return Verdict{}, err
	}
	return Verdict{Allowed: true, Mutated: string(text)}, nil
}

// Policy is what a plugin implements. Settings arrive as raw JSON: read them with the
// Settings helpers, which refuse bad settings with the Rust SDK's words.
type Policy interface {
	// ValidateSettings is called once when a binding loads; an error refuses the settings.
	ValidateSettings(settings Settings) error
	// Validate decides; an error means the request could not be evaluated at all.
	Validate(request *Request, settings Settings) (Verdict, error)
}

// Mutator is implemented by policies that may change the object.
type Mutator interface {
	Mutate(request *Request, settings Settings) (Verdict, error)
}

var registered Policy

// Register makes p the component's policy. Call it from an init function.
func Register(p Policy) { registered = p }

func errorf(format string, a ...any) error { return fmt.Errorf(format, a...) }

func parseObject(text string, into *map[string]any) error {
	return json.Unmarshal([]byte(text), into)
}

func policy() Policy {
	if registered == nil {
		panic("corbel: no policy registered: call corbel.Register from an init function")
	}
	return registered
}

func validateSettings(text string) error {
	settings, err := parseSettings(text)
	if err != nil {
		return err
	}
	return policy().ValidateSettings(settings)
}

func evaluate(request *Request, settingsText string, mutating bool) (Verdict, error) {
	settings, err := parseSettings(settingsText)
	if err != nil {
		return Verdict{}, err
	}
	if !mutating {
		return policy().Validate(request, settings)
	}
	m, ok := policy().(Mutator)
	if !ok {
		return Verdict{}, errorf("this policy does not mutate: bind it in validate mode")
	}
	return m.Mutate(request, settings)
}

// Settings is the binding's settings: a JSON object, its members in document order.
type Settings struct {
	raw  json.RawMessage
	keys []string
	vals map[string]json.RawMessage
}

func parseSettings(text string) (Settings, error) {
	s := Settings{raw: json.RawMessage(text), vals: map[string]json.RawMessage{}}
	dec := json.NewDecoder(strings.NewReader(text))
	tok, err := dec.Token()
	if err != nil {
		return s, errorf("invalid settings: %v", err)
	}
	if tok != json.Delim('{') {
		var v any
		_ = json.Unmarshal([]byte(text), &v)
		return s, errorf("invalid settings: invalid type: %s, expected a map", describe(v))
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return s, errorf("invalid settings: %v", err)
		}
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return s, errorf("invalid settings: %v", err)
		}
		name := key.(string)
		s.keys = append(s.keys, name)
		s.vals[name] = value
	}
	return s, nil
}

// Raw is the settings' JSON text.
func (s Settings) Raw() json.RawMessage { return s.raw }

// Only refuses a member other than fields, as `#[serde(deny_unknown_fields)]` does.
func (s Settings) Only(fields ...string) error {
	for _, key := range s.keys {
		known := false
		for _, f := range fields {
			known = known || f == key
		}
		if known {
			continue
		}
		quoted := make([]string, len(fields))
		for i, f := range fields {
			quoted[i] = "`" + f + "`"
		}
		expected := "there are no fields"
		switch len(fields) {
		case 0:
		case 1:
			expected = "expected " + quoted[0]
		default:
			expected = "expected one of " + strings.Join(quoted, ", ")
		}
		return errorf("invalid settings: unknown field `%s`, %s", key, expected)
	}
	return nil
}

// Strings reads a required list of strings.
func (s Settings) Strings(field string) ([]string, error) {
	raw, ok := s.vals[field]
	if !ok {
		return nil, errorf("invalid settings: missing field `%s`", field)
	}
	var items []any
	if err := json.Unmarshal(raw, &items); err != nil || bytes.HasPrefix(bytes.TrimSpace(raw), []byte("null")) {
		var v any
		_ = json.Unmarshal(raw, &v)
		return nil, errorf("invalid settings: invalid type: %s, expected a sequence", describe(v))
	}
	out := make([]string, len(items))
	for i, item := range items {
		text, ok := item.(string)
		if !ok {
			return nil, errorf("invalid settings: invalid type: %s, expected a string", describe(item))
		}
		out[i] = text
	}
	return out, nil
}

// describe names a JSON value's type as serde does in its errors.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return fmt.Sprintf("boolean `%t`", v)
	case float64:
		if v == float64(int64(v)) {
			return fmt.Sprintf("integer `%d`", int64(v))
		}
		return fmt.Sprintf("floating point `%v`", v)
	case string:
		quoted, _ := json.Marshal(v)
		return "string " + string(quoted)
	case []any:
		return "sequence"
	default:
		return "map"
	}
}
