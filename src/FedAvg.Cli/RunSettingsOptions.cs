using System.CommandLine;
using FedAvg.Actors.Hosting;

namespace FedAvg.Cli;

/// <summary>
/// The command-line side of <see cref="RunSettings"/>: one option per setting (flag, help and default from the
/// table), and the flags a user gave turned into HOCON overrides of `fedavg.KEY`. Any command that runs a federation
/// takes every setting this way, plus flags of its own:
/// <code>
/// var command = new Command("server", "…");
/// RunSettingsOptions.AddTo(command);
/// var port = new Option&lt;int&gt;("--port"); command.Options.Add(port);
/// command.SetAction(parse =&gt; {
///     var config = HoconFiles.Load("simulation.conf", parse.GetValue(configFile), RunSettingsOptions.Overrides(parse));
///     var options = SimulationOptions.FromConfig(config); … });
/// </code>
/// </summary>
public static class RunSettingsOptions
{
    /// <summary>Adds an option for every setting that has a flag. No option has a default of its own, so a flag not
    /// given leaves the HOCON layers (and then the table's default) in force.</summary>
    public static void AddTo(Command command)
    {
        foreach (var setting in RunSettings.Flags) command.Options.Add(Create(setting));
    }

    static Option Create(Setting setting)
    {
        string description = $"{setting.Help} Default {setting.DefaultHocon}; HOCON {setting.Path}.";
        return setting.IsSwitch
            ? new Option<string>(setting.Flag!) { Description = description, HelpName = setting.ValueHint, Arity = ArgumentArity.ZeroOrOne }
            : new Option<string>(setting.Flag!) { Description = description, HelpName = setting.ValueHint };
    }

    /// <summary>The settings the user gave as flags, as HOCON lines `fedavg.KEY = VALUE`, to layer over the files.</summary>
    public static string Overrides(ParseResult parse)
    {
        var lines = new List<string>();
        foreach (var setting in RunSettings.Flags)
        {
            if (parse.GetResult(setting.Flag!) is not System.CommandLine.Parsing.OptionResult { Implicit: false } given) continue;
            string? text = given.Tokens.Count == 0 ? null : given.GetValueOrDefault<string>();
            lines.Add($"{setting.Path} = {setting.FlagValueToHocon(text)}");
        }
        return string.Join("\n", lines);
    }
}
