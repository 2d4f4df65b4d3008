// A small JSON reader for the request's objects: it checks a document without building anything,
// and finds one member's text (`metadata`, then `labels`) by skipping the rest.
//
// Why by hand: every request runs in a fresh sandbox, so a policy pays for whatever the SDK parses,
// on every request. encoding/json builds a `map[string]any` of the whole object through reflection,
// which under Wasm cost more than the policy itself; most policies read only labels or annotations.
// A Go module offering this (a streaming or lazy JSON reader) would come through the Go module
// proxy, which this project's machines do not reach, so only the standard library is available.
// Whole objects are still parsed by encoding/json, on first use (Request.Object).

package corbel

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

type syntaxError struct {
	offset int
	what   string
}

func (e *syntaxError) Error() string { return fmt.Sprintf("%s at offset %d", e.what, e.offset) }

func space(s string, i int) int {
	for i < len(s) {
		switch s[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// checkJSON reports whether s is exactly one JSON value, as encoding/json would accept it.
func checkJSON(s string) error {
	end, err := skipValue(s, space(s, 0), 0)
	if err != nil {
		return err
	}
	if end = space(s, end); end != len(s) {
		return &syntaxError{end, "invalid character after the top-level value"}
	}
	return nil
}

// skipValue returns the index just past the value starting at s[i].
func skipValue(s string, i, depth int) (int, error) {
	if depth > 10000 {
		return 0, &syntaxError{i, "exceeded max depth"}
	}
	if i >= len(s) {
		return 0, &syntaxError{i, "unexpected end of JSON input"}
	}
	switch c := s[i]; {
	case c == '"':
		return skipString(s, i)
	case c == '{':
		i = space(s, i+1)
		if i < len(s) && s[i] == '}' {
			return i + 1, nil
		}
		for {
			if i >= len(s) || s[i] != '"' {
				return 0, &syntaxError{i, "expected a string as an object key"}
			}
			var err error
			if i, err = skipString(s, i); err != nil {
				return 0, err
			}
			if i = space(s, i); i >= len(s) || s[i] != ':' {
				return 0, &syntaxError{i, "expected ':' after an object key"}
			}
			if i, err = skipValue(s, space(s, i+1), depth+1); err != nil {
				return 0, err
			}
			if i = space(s, i); i < len(s) && s[i] == ',' {
				i = space(s, i+1)
				continue
			}
			if i < len(s) && s[i] == '}' {
				return i + 1, nil
			}
			return 0, &syntaxError{i, "expected ',' or '}' after an object member"}
		}
	case c == '[':
		i = space(s, i+1)
		if i < len(s) && s[i] == ']' {
			return i + 1, nil
		}
		for {
			var err error
			if i, err = skipValue(s, i, depth+1); err != nil {
				return 0, err
			}
			if i = space(s, i); i < len(s) && s[i] == ',' {
				i = space(s, i+1)
				continue
			}
			if i < len(s) && s[i] == ']' {
				return i + 1, nil
			}
			return 0, &syntaxError{i, "expected ',' or ']' after an array element"}
		}
	case c == 't':
		return literal(s, i, "true")
	case c == 'f':
		return literal(s, i, "false")
	case c == 'n':
		return literal(s, i, "null")
	case c == '-' || (c >= '0' && c <= '9'):
		return skipNumber(s, i)
	default:
		return 0, &syntaxError{i, fmt.Sprintf("invalid character %q looking for beginning of value", c)}
	}
}

func literal(s string, i int, word string) (int, error) {
	if strings.HasPrefix(s[i:], word) {
		return i + len(word), nil
	}
	return 0, &syntaxError{i, "invalid literal"}
}

func digits(s string, i int) int {
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

func skipNumber(s string, i int) (int, error) {
	start := i
	if s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		i = digits(s, i)
	default:
		return 0, &syntaxError{start, "invalid number"}
	}
	if i < len(s) && s[i] == '.' {
		if j := digits(s, i+1); j > i+1 {
			i = j
		} else {
			return 0, &syntaxError{start, "invalid number"}
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if j := digits(s, i); j > i {
			i = j
		} else {
			return 0, &syntaxError{start, "invalid number"}
		}
	}
	return i, nil
}

// skipString returns the index past the string opening at s[i]; escapes and UTF-8 are checked.
func skipString(s string, i int) (int, error) {
	start := i
	i++
	for i < len(s) {
		c := s[i]
		switch {
		case c == '"':
			return i + 1, nil
		case c == '\\':
			if i+1 >= len(s) {
				return 0, &syntaxError{start, "unterminated string"}
			}
			switch s[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(s) || !hex4(s[i+2:i+6]) {
					return 0, &syntaxError{i, "invalid \\u escape in string"}
				}
				i += 6
			default:
				return 0, &syntaxError{i, "invalid escape in string"}
			}
		case c < 0x20:
			return 0, &syntaxError{i, "invalid control character in string"}
		case c < utf8.RuneSelf:
			i++
		default:
			// Invalid UTF-8 is accepted, as encoding/json accepts it (it reads it as U+FFFD).
			_, n := utf8.DecodeRuneInString(s[i:])
			i += n
		}
	}
	return 0, &syntaxError{start, "unterminated string"}
}

func hex4(s string) bool {
	for i := 0; i < 4; i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// unquote decodes a checked JSON string token; most keys and values have no escapes to decode.
func unquote(token string) string {
	inner := token[1 : len(token)-1]
	if !strings.ContainsRune(inner, '\\') {
		return inner
	}
	var out string
	_ = json.Unmarshal([]byte(token), &out)
	return out
}

// members calls f with each member of the checked object text obj (its key decoded, its value as
// text) until f returns false. Text that is not an object has no members.
func members(obj string, f func(key, value string) bool) {
	i := space(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return
	}
	i = space(obj, i+1)
	for i < len(obj) && obj[i] == '"' {
		end, _ := skipString(obj, i)
		key := unquote(obj[i:end])
		i = space(obj, end) + 1 // past ':'
		i = space(obj, i)
		valueEnd, _ := skipValue(obj, i, 0)
		if !f(key, obj[i:valueEnd]) {
			return
		}
		i = space(obj, valueEnd)
		if i < len(obj) && obj[i] == ',' {
			i = space(obj, i+1)
		}
	}
}

// member is the text of obj's member key, the last one when the key repeats (as encoding/json).
func member(obj, key string) (string, bool) {
	var found string
	ok := false
	members(obj, func(k, v string) bool {
		if k == key {
			found, ok = v, true
		}
		return true
	})
	return found, ok
}

// stringMembers is the string-valued members of the checked object text obj.
func stringMembers(obj string) map[string]string {
	out := map[string]string{}
	members(obj, func(k, v string) bool {
		if len(v) > 0 && v[0] == '"' {
			out[k] = unquote(v)
		}
		return true
	})
	return out
}

// elements calls f with the text of each element of the checked array text arr until f returns
// false.
func elements(arr string, f func(item string) bool) {
	i := space(arr, 0)
	if i >= len(arr) || arr[i] != '[' {
		return
	}
	i = space(arr, i+1)
	for i < len(arr) && arr[i] != ']' {
		end, _ := skipValue(arr, i, 0)
		if !f(arr[i:end]) {
			return
		}
		i = space(arr, end)
		if i < len(arr) && arr[i] == ',' {
			i = space(arr, i+1)
		}
	}
}
