using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using FedAvg.Tests.Shared;

namespace FedAvg.Cli.Tests;

/// <summary>
/// A real `fedavg` process (the binary built beside these tests), its output collected line by line. Waiting is on
/// output or exit, never on time alone; Dispose kills the process and its children, so a test that fails still
/// leaves nothing running.
/// </summary>
public sealed class FedavgProcess : IDisposable
{
    readonly Process process;
    readonly ConcurrentQueue<string> lines = new();
    readonly List<(Regex Pattern, TaskCompletionSource<Match> Found)> waiters = [];
    readonly List<(Regex Pattern, int[] Left, TaskCompletionSource Found)> counters = [];
    readonly object gate = new();
    public string Name { get; }

    public static string Binary => Path.Combine(AppContext.BaseDirectory, "fedavg");

    public FedavgProcess(string name, params string[] args) : this(name, new Dictionary<string, string>(), args)
    {
    }

    /// <summary>With <paramref name="environment"/> added to this process's environment (FEDAVG_DATA is always set).</summary>
    public FedavgProcess(string name, IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        Name = name;
        var start = new ProcessStartInfo(Binary)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args) start.ArgumentList.Add(a);
        start.Environment["FEDAVG_DATA"] = TestData.DataDir;
        foreach (var (variable, value) in environment) start.Environment[variable] = value;
        process = new Process { StartInfo = start, EnableRaisingEvents = true };
        process.OutputDataReceived += (_, e) => OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => OnLine(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    void OnLine(string? line)
    {
        if (line is null) return;
        lines.Enqueue(line);
        lock (gate)
        {
            foreach (var (pattern, found) in waiters)
                if (pattern.Match(line) is { Success: true } m) found.TrySetResult(m);
            foreach (var (pattern, left, found) in counters)
                if (pattern.IsMatch(line) && --left[0] <= 0) found.TrySetResult();
        }
    }

    public string Output => string.Join("\n", lines);
    public int Pid => process.Id;
    public bool HasExited => process.HasExited;

    /// <summary>The first line (already printed or still to come) that matches; fails with the output after <paramref name="timeout"/>.</summary>
    public async Task<Match> WaitForLine(string pattern, TimeSpan timeout)
    {
        var regex = new Regex(pattern);
        var found = new TaskCompletionSource<Match>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (gate)
        {
            foreach (var line in lines)
                if (regex.Match(line) is { Success: true } m) return m;
            waiters.Add((regex, found));
        }
        // WaitForExitAsync also waits for the redirected output to end, so every line has been seen when it completes
        using var bound = new CancellationTokenSource(timeout);
        await Task.WhenAny(found.Task, process.WaitForExitAsync(bound.Token));
        if (found.Task.IsCompleted) return found.Task.Result;
        throw new Xunit.Sdk.XunitException($"{Name}: no line matching /{pattern}/ " +
                                           (bound.IsCancellationRequested ? $"within {timeout}" : $"before it exited with {process.ExitCode}") + $":\n{Output}");
    }

    /// <summary>Until <paramref name="count"/> lines (already printed or still to come) match; fails with the output after <paramref name="timeout"/>.</summary>
    public async Task WaitForLines(string pattern, int count, TimeSpan timeout)
    {
        var regex = new Regex(pattern);
        var found = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (gate)
        {
            int left = count - lines.Count(regex.IsMatch);
            if (left <= 0) return;
            counters.Add((regex, [left], found));
        }
        using var bound = new CancellationTokenSource(timeout);
        await Task.WhenAny(found.Task, process.WaitForExitAsync(bound.Token));
        if (!found.Task.IsCompleted)
            throw new Xunit.Sdk.XunitException($"{Name}: fewer than {count} lines matching /{pattern}/ " +
                                               (process.HasExited ? $"before it exited with {process.ExitCode}" : $"within {timeout}") + $":\n{Output}");
    }

    /// <summary>The exit code; fails with the output if the process runs past <paramref name="timeout"/>.</summary>
    public async Task<int> WaitForExit(TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            throw new Xunit.Sdk.XunitException($"{Name}: still running after {timeout}:\n{Output}");
        }
        process.WaitForExit(); // drains the output
        return process.ExitCode;
    }

    /// <summary>SIGKILL: no shutdown hook, no goodbye to the cluster.</summary>
    public void Kill()
    {
        if (!process.HasExited) process.Kill(entireProcessTree: true);
        process.WaitForExit();
    }

    /// <summary>SIGTERM, as `kill PID` or a service manager sends it (through libc: no `kill` binary needed).</summary>
    public void Terminate()
    {
        if (SendSignal(process.Id, 15) != 0) throw new InvalidOperationException($"{Name}: kill(SIGTERM) failed");
    }

    /// <summary>SIGSTOP: the process stops answering anyone, as behind a cut cable, until <see cref="Continue"/>.</summary>
    public void Pause()
    {
        if (SendSignal(process.Id, 19) != 0) throw new InvalidOperationException($"{Name}: kill(SIGSTOP) failed");
    }

    /// <summary>SIGCONT after <see cref="Pause"/>.</summary>
    public void Continue()
    {
        if (SendSignal(process.Id, 18) != 0) throw new InvalidOperationException($"{Name}: kill(SIGCONT) failed");
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    static extern int SendSignal(int pid, int signal);

    public void Dispose()
    {
        try
        {
            Kill();
        }
        catch (InvalidOperationException)
        {
        }
        process.Dispose();
    }

    /// <summary>A port the OS says is free now (bound to port 0, then released): for a server that must come back on it.</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
