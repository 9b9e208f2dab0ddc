package main

import "testing"

func TestOnlyBrokenProblems(t *testing.T) {
	const broken = "/etc/corral/services/broken.toml:8: restrat: unknown key (did you mean \"restart\"?)\n" +
		"disabled: broken: restrat: unknown key (did you mean \"restart\"?)\n"
	tests := []struct {
		name string
		out  string
		code int
		ok   bool
	}{
		{"only the broken file", broken + "7 services ok, 1 disabled, 1 problem\n", 1, true},
		{"check passed", "8 services ok, 0 disabled, 0 problems\n", 0, false},
		{"another problem", broken + "/etc/corral/services/web.toml:3: exec: required\ndisabled: web: exec: required\n6 services ok, 2 disabled, 2 problems\n", 1, false},
		{"another disabled service", broken + "disabled: check: requires web, which is disabled\n6 services ok, 2 disabled, 1 problem\n", 1, false},
		{"broken not disabled", "/etc/corral/services/broken.toml:8: restrat: unknown key\n8 services ok, 0 disabled, 1 problem\n", 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := onlyBrokenProblems(tt.out, tt.code); (err == nil) != tt.ok {
				t.Errorf("err = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
