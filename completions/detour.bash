# bash completion for detour. The candidates come from the binary itself (`detour __complete`),
# so they follow the installed version's options and the routes and targets of your config.
# Install: copy to /usr/share/bash-completion/completions/detour (cmake --install does), or
# source it from ~/.bashrc.
_detour() {
  local cur=${COMP_WORDS[COMP_CWORD]}
  local IFS=$'\n'
  local -a answer
  answer=($("${COMP_WORDS[0]}" __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
  if [[ ${answer[0]-} == files ]]; then
    compopt -o filenames 2>/dev/null
    COMPREPLY=($(compgen -f -- "$cur"))
  else
    COMPREPLY=("${answer[@]:1}")
  fi
}
complete -F _detour detour
