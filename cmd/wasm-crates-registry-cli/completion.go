package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

// completeFlag is the option the shell scripts below append to ask the CLI
// for the words that may come next (urfave/cli's bash completion).
const completeFlag = "--generate-bash-completion"

const bashCompletion = `# bash completion for wasm-crates-registry-cli
# Load it with: source <(wasm-crates-registry-cli completion bash)
_wasm_crates_registry_cli() {
	local cur="${COMP_WORDS[COMP_CWORD]}" words
	if [[ "$cur" == -* ]]; then
		words=$("${COMP_WORDS[@]:0:$COMP_CWORD}" "$cur" ` + completeFlag + ` 2>/dev/null)
	else
		words=$("${COMP_WORDS[@]:0:$COMP_CWORD}" ` + completeFlag + ` 2>/dev/null)
	fi
	COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o default -F _wasm_crates_registry_cli wasm-crates-registry-cli
`

const zshCompletion = `#compdef wasm-crates-registry-cli
# zsh completion for wasm-crates-registry-cli
# Load it with: source <(wasm-crates-registry-cli completion zsh)
_wasm_crates_registry_cli() {
	local -a opts
	if [[ "${words[-1]}" == -* ]]; then
		opts=("${(@f)$(${words[@]:0:#words[@]-1} ${words[-1]} ` + completeFlag + ` 2>/dev/null)}")
	else
		opts=("${(@f)$(${words[@]:0:#words[@]-1} ` + completeFlag + ` 2>/dev/null)}")
	fi
	compadd -a opts
}
compdef _wasm_crates_registry_cli wasm-crates-registry-cli
`

func completionCmd() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script (bash, zsh or fish)",
		ArgsUsage: "SHELL",
		Description: "Load it in the running shell, for example:\n\n" +
			"   source <(wasm-crates-registry-cli completion bash)\n\n" +
			"or save it where your shell reads completions (bash: /etc/bash_completion.d/, " +
			"zsh: a directory on $fpath, fish: ~/.config/fish/completions/wasm-crates-registry-cli.fish).",
		BashComplete: func(*cli.Context) { fmt.Println("bash\nzsh\nfish") },
		Action: func(c *cli.Context) error {
			sh, err := oneArg(c, "shell name")
			if err != nil {
				return err
			}
			switch sh {
			case "bash":
				fmt.Print(bashCompletion)
			case "zsh":
				fmt.Print(zshCompletion)
			case "fish":
				s, err := c.App.ToFishCompletion()
				if err != nil {
					return fmt.Errorf("writing the fish completion: %w", err)
				}
				fmt.Print(s)
			default:
				return usagef("no completion for shell %q: choose bash, zsh or fish", sh)
			}
			return nil
		},
	}
}
