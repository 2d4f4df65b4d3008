// Package corbel: Corbel admission policies in Go.
//
// Implement Policy, register it from an init function, and build with sdk/go/build.sh:
//
//	func init() { corbel.Register(requireLabels{}) }
//
// Every call runs in a fresh sandbox: keep no state between calls.
package corbel

import (
	"encoding/json"
	"fmt"
	"strings"
)

// WITVersion is the corbel:plugin version this SDK implements.
const WITVersion = "0.1.0"

type GroupVersionKind struct{ Group, Version, Kind string }

// Request is one admission request. Its objects arrive as JSON text and are parsed on first use:
// Labels and Annotations read only the subject's metadata, so a policy that needs no more never
// pays for parsing the whole object (every request runs in a fresh sandbox, so nothing parsed is
// ever reused).
type Request struct {
	UID         string
	Kind        GroupVersionKind
	Resource    string // the plural name, such as "configmaps"
	SubResource string
	Operation   string // CREATE, UPDATE, DELETE or CONNECT
	Namespace   string
	Name        string
	Username    string
	Groups      []string
	DryRun      bool

	object, oldObject, options document
}

// document is one JSON object of the request: its text, checked on arrival, parsed on first use.
type document struct {
	text   string // "" when the request carries none
	parsed bool
	value  map[string]any
}

func (d *document) present() bool { return d.text != "" && d.text != "null" }

func (d *document) get() map[string]any {
	if !d.parsed && d.present() {
		// Checked to be a JSON object on arrival, so this cannot fail.
		_ = json.Unmarshal([]byte(d.text), &d.value)
	}
	d.parsed = true
	return d.value
}

// checkObject keeps text as a document, after checking it is a JSON object (or null).
func checkObject(what, text string, into *document) error {
	if err := checkJSON(text); err != nil {
		return errorf("the request's %s is not a JSON object: %v", what, err)
	}
	if i := space(text, 0); text[i] != '{' && !strings.HasPrefix(text[i:], "null") {
		return errorf("the request's %s is not a JSON object: it is %s", what, describeText(text))
	}
	*into = document{text: text}
	return nil
}

// Object is the new object, parsed; nil on DELETE.
func (r *Request) Object() map[string]any { return r.object.get() }

// OldObject is the existing object, parsed: on UPDATE and DELETE.
func (r *Request) OldObject() map[string]any { return r.oldObject.get() }

// Options is the operation's options (CreateOptions, UpdateOptions, DeleteOptions), when sent.
func (r *Request) Options() map[string]any { return r.options.get() }

// Subject is the object the request is about: the new object, or on DELETE the old one.
func (r *Request) Subject() map[string]any { return r.subject().get() }

func (r *Request) subject() *document {
	if r.object.present() {
		return &r.object
	}
	return &r.oldObject
}

// Labels of Subject (empty when it has none), read from its metadata alone.
func (r *Request) Labels() map[string]string { return r.metadataMap("labels") }

// Annotations of Subject (empty when it has none), read from its metadata alone.
func (r *Request) Annotations() map[string]string { return r.metadataMap("annotations") }

func (r *Request) metadataMap(field string) map[string]string {
	d := r.subject()
	if d.parsed {
		return stringMap(d.value, field)
	}
	metadata, _ := member(d.text, "metadata")
	values, _ := member(metadata, field)
	return stringMembers(values)
}

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
	if checkJSON(text) != nil || text[space(text, 0)] != '{' {
		// Refused: encoding/json's reading gives the words of the error.
		return refusedSettings(text)
	}
	s := Settings{raw: json.RawMessage(text), vals: map[string]json.RawMessage{}}
	members(text, func(key, value string) bool {
		s.keys = append(s.keys, key)
		s.vals[key] = json.RawMessage(value)
		return true
	})
	return s, nil
}

func refusedSettings(text string) (Settings, error) {
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
	if len(raw) == 0 || raw[0] != '[' {
		return nil, errorf("invalid settings: invalid type: %s, expected a sequence", describeText(string(raw)))
	}
	var out []string
	var err error
	elements(string(raw), func(item string) bool {
		if item[0] != '"' {
			err = errorf("invalid settings: invalid type: %s, expected a string", describeText(item))
			return false
		}
		out = append(out, unquote(item))
		return true
	})
	if out == nil && err == nil {
		out = []string{}
	}
	return out, err
}

// describeText names the type of a JSON value's text as serde does in its errors.
func describeText(text string) string {
	var v any
	_ = json.Unmarshal([]byte(text), &v)
	return describe(v)
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
