package config

import (
	"fmt"
	"os"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// envDefaults are the keys the original's viper had defaults for; it took
// those from the environment even when the file did not write them.
var envDefaults = map[string]bool{
	"target.type": true,
	"target.aws.ecrOptions.imageTagMutability":                         true,
	"target.aws.ecrOptions.imageScanningConfiguration.imageScanOnPush": true,
	"target.aws.ecrOptions.encryptionConfiguration.encryptionType":     true,
}

// applyEnv is the original's viper.AutomaticEnv: a single value the file
// writes (or one viper had a default for) is taken from the environment
// variable named after its whole path in upper case, dots kept (DRYRUN,
// LOGLEVEL, TARGET.AWS.REGION), when that is set and not empty. Values
// inside lists have no such name.
func (d *decoder) applyEnv(v reflect.Value, path string) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		name := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		if name == "" || name == "-" {
			continue
		}
		key, f := join(path, name), v.Field(i)
		if f.Kind() == reflect.Struct && f.Type() != durationType {
			d.applyEnv(f, key)
			continue
		}
		if _, written := d.lines[key]; f.Kind() == reflect.Slice || !written && !envDefaults[key] {
			continue
		}
		env := strings.ToUpper(key)
		val, ok := os.LookupEnv(env)
		if !ok || val == "" {
			continue
		}
		n := &yaml.Node{Kind: yaml.ScalarNode, Value: val, Line: d.lines[key]}
		var ps []Problem
		if f.Type() == durationType {
			ps = decodeDuration(n, f, key)
		} else {
			ps = decodeScalar(n, f, key)
		}
		for j := range ps {
			ps[j].Msg += " (from the environment variable " + env + ")"
		}
		d.fail(ps...)
		if len(ps) == 0 {
			d.warnings = append(d.warnings, Problem{Key: key, Line: d.lines[key],
				Msg: fmt.Sprintf("set from the environment variable %s, not from the file (the original's automatic environment)", env)})
		}
	}
}
