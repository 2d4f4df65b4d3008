// {{name}}: denies CREATE and UPDATE of objects that miss the label named in the settings.
package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"corbel.dev/sdk"
)

type requireLabel struct{}

func label(settings corbel.Settings) (string, error) {
	if err := settings.Only("label"); err != nil {
		return "", err
	}
	var s struct{ Label *string }
	_ = json.Unmarshal(settings.Raw(), &s)
	if s.Label == nil {
		return "", fmt.Errorf("invalid settings: missing field `label`")
	}
	return *s.Label, nil
}

func (requireLabel) ValidateSettings(settings corbel.Settings) error {
	l, err := label(settings)
	if err == nil && strings.TrimSpace(l) == "" {
		err = fmt.Errorf("`label` is blank: name a label key, e.g. {\"label\": \"team\"}")
	}
	return err
}

func (requireLabel) Validate(request *corbel.Request, settings corbel.Settings) (corbel.Verdict, error) {
	l, err := label(settings)
	if err != nil {
		return corbel.Verdict{}, err
	}
	if request.Operation != "CREATE" && request.Operation != "UPDATE" {
		return corbel.Allow(), nil
	}
	if _, ok := request.Labels()[l]; ok {
		return corbel.Allow(), nil
	}
	return corbel.Deny("missing required label: " + l), nil
}

func init() { corbel.Register(requireLabel{}) }

// A reactor: the host calls the exports; main never runs.
func main() {}
