// require-labels, in Go: denies CREATE and UPDATE of any object that misses one of the listed
// labels, naming every missing label. Same settings and messages as plugins/require-labels.
package main

import (
	"fmt"
	"strings"

	"corbel.dev/sdk"
)

type requireLabels struct{}

func labels(settings corbel.Settings) ([]string, error) {
	if err := settings.Only("labels"); err != nil {
		return nil, err
	}
	return settings.Strings("labels")
}

func (requireLabels) ValidateSettings(settings corbel.Settings) error {
	list, err := labels(settings)
	if err != nil {
		return err
	}
	if len(list) == 0 {
		return fmt.Errorf("`labels` is empty: list at least one label key, e.g. {\"labels\": [\"team\"]}")
	}
	for i, label := range list {
		if strings.TrimSpace(label) == "" {
			return fmt.Errorf("`labels[%d]` is blank: every entry must be a label key", i)
		}
	}
	return nil
}

func (requireLabels) Validate(request *corbel.Request, settings corbel.Settings) (corbel.Verdict, error) {
	list, err := labels(settings)
	if err != nil {
		return corbel.Verdict{}, err
	}
	if request.Operation != "CREATE" && request.Operation != "UPDATE" {
		return corbel.Allow(), nil
	}
	present := request.Labels()
	var missing []string
	for _, label := range list {
		// One check per label, named as the Rust plugin names it: a denial's trace says which
		// label was missing (docs/trace.md).
		if _, ok := present[label]; !corbel.Check("label "+label, ok, "") {
			missing = append(missing, label)
		}
	}
	if len(missing) == 0 {
		return corbel.Allow(), nil
	}
	return corbel.Deny("missing required labels: " + strings.Join(missing, ", ")), nil
}

func init() { corbel.Register(requireLabels{}) }

// A reactor: the host calls the exports; main never runs.
func main() {}
