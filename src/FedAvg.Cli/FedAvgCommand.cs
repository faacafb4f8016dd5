using System.CommandLine;
using System.Runtime.InteropServices;
using FedAvg.Actors.Hosting;
using FedAvg.Core;
using Spectre.Console;

namespace FedAvg.Cli;

/// <summary>Builds the `fedavg` command tree and maps failures to the documented exit codes.</summary>
public static class FedAvgCommand
{
    public static int Run(string[] args, TextWriter? output = null, TextWriter? error = null)
    {
        var root = new RootCommand("Federated Averaging on Akka.NET actors and TorchSharp.")
        {
            DataCommands.Create(),
            CentralizedCommand.Create(),
            SimulateCommand.Create(),
            BenchCommand.Create(),
            PartitionCommand.Create(),
            ServerCommand.Create(),
            NodeCommand.Create(),
            CertsCommand.Create(),
        };
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            var err = error ?? Console.Error;
            foreach (var e in parse.Errors) err.WriteLine($"fedavg: {Plain(e.Message)}");
            err.WriteLine("Run `fedavg --help` (or `fedavg COMMAND --help`) for usage.");
            return ExitCodes.UsageError;
        }
        // Ctrl-C and SIGTERM cancel the command's token and nothing else: a run stops at its own pace (a simulation keeps
        // its checkpoint, a node or server leaves the cluster through coordinated shutdown), then exits with 130.
        // Without this, SIGTERM ends the process through ProcessExit while the command is still running.
        var config = new InvocationConfiguration { EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = null };
        if (output is not null) config.Output = output;
        if (error is not null) config.Error = error;
        using var stop = new CancellationTokenSource();
        void Stop(PosixSignalContext context)
        {
            context.Cancel = true;
            if (stop.IsCancellationRequested)
            {
                // the second signal: a command that does not watch the token (centralized, the benches) or a stop that
                // takes too long ends now; what was written is whole (every result file is written atomically).
                // _exit, not Environment.Exit: that runs libtorch's static destructors while a trainer thread is still
                // inside libtorch, and the process died of SIGSEGV (exit 139) instead of exiting 130 (CI at 2bbcd79+)
                (error ?? Console.Error).WriteLine("fedavg: interrupted again: stopping now.");
                (error ?? Console.Error).Flush();
                Console.Out.Flush();
                ExitNow(ExitCodes.Interrupted);
            }
            (error ?? Console.Error).WriteLine("fedavg: stopping (Ctrl-C again to stop at once) …");
            stop.Cancel();
        }
        using var sigint = output is null ? PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop) : null;
        using var sigterm = output is null ? PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop) : null;
        try
        {
            return parse.InvokeAsync(config, stop.Token).GetAwaiter().GetResult();
        }
        catch (Exception e)
        {
            return Report(e, error ?? Console.Error);
        }
    }

    /// <summary>Ends the process at once with <paramref name="code"/>: no finalizers, no atexit handlers, no native destructors.</summary>
    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "_exit")]
    static extern void ExitNow(int code);

    /// <summary>
    /// System.CommandLine's message with .NET type names put in words: "as expected type
    /// 'System.Nullable`1[System.Int32]'" reads "as a whole number"; and a flag given twice is said to be
    /// ("expects a single argument but 2 were provided" read as if one flag had been given two values).
    /// </summary>
    static string Plain(string message) => System.Text.RegularExpressions.Regex.Replace(
        System.Text.RegularExpressions.Regex.Replace(message, @"^Option '([^']+)' expects a single argument but (\d+) were provided\.$",
            m => $"{m.Groups[1].Value} takes one value and was given {m.Groups[2].Value} (is it there twice?); give it once."),
        @"as expected type '(?:System\.Nullable`1\[)?System\.(\w+)\]?'", m => m.Groups[1].Value switch
        {
            "Int32" or "Int64" => "as a whole number",
            "Double" or "Single" => "as a number",
            "Boolean" => "as true or false",
            "TimeSpan" => "as a duration",
            var other => $"as a value of type {other}",
        });

    public static int Report(Exception e, TextWriter error)
    {
        switch (e)
        {
            case UsageException u:
                error.WriteLine($"fedavg: {u.Message}");
                return ExitCodes.UsageError;
            case DataException d:
                error.WriteLine($"fedavg: data error: {d.Message}");
                return ExitCodes.DataError;
            case OutputException o:
                error.WriteLine($"fedavg: {o.Message}");
                return ExitCodes.RuntimeFailure;
            case ServerUnreachableException s:
                error.WriteLine($"fedavg: {s.Message}");
                return ExitCodes.ServerUnreachable;
            case ServerDownedException d:
                error.WriteLine($"fedavg: {d.Message}");
                return ExitCodes.ServerUnreachable;
            case NodeRefusedException r:
                error.WriteLine($"fedavg: {r.Message}");
                return ExitCodes.NodeRefused;
            case OperationCanceledException:
                error.WriteLine("fedavg: interrupted. A simulation or server keeps its last checkpoint: continue it with --resume DIR.");
                return ExitCodes.Interrupted;
            case AggregateException { InnerExceptions.Count: 1 } a:
                return Report(a.InnerExceptions[0], error);
            default:
                error.WriteLine($"fedavg: failed: {e}");
                return ExitCodes.RuntimeFailure;
        }
    }
}
