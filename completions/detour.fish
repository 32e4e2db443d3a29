# fish completion for detour. The candidates come from the binary itself (`detour __complete`),
# so they follow the installed version's options and the routes and targets of your config.
# Install: copy to /usr/share/fish/vendor_completions.d/ (cmake --install does) or
# ~/.config/fish/completions/.

function __detour_complete
    set -l before (commandline -opc)
    set -l answer ($before[1] __complete $before[2..-1] (commandline -ct) 2>/dev/null)
    if test "$answer[1]" = files
        __fish_complete_path (commandline -ct)
    else
        printf '%s\n' $answer[2..-1]
    end
end

complete -c detour -f -a '(__detour_complete)'
