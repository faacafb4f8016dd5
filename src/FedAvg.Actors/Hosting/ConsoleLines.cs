namespace FedAvg.Actors.Hosting;

/// <summary>
/// Where a host's lines (Akka's log, membership events) go: straight to the console, or, while a live display holds
/// the terminal (the command line's progress bar), through that display, which prints them above itself. Written
/// straight past it, a line lands inside the bar and the next redraw tears it.
/// </summary>
public static class ConsoleLines
{
    static volatile Action<string, bool>? through;

    /// <summary>Writes <paramref name="line"/> to standard output (<paramref name="error"/>: standard error), or through the live display.</summary>
    public static void Write(string line, bool error = false)
    {
        if (through is { } display) display(line, error);
        else if (error) Console.Error.WriteLine(line);
        else Console.WriteLine(line);
    }

    /// <summary>Sends every line through <paramref name="display"/> until the result is disposed.</summary>
    public static IDisposable Through(Action<string, bool> display)
    {
        through = display;
        return new Restore();
    }

    sealed class Restore : IDisposable
    {
        public void Dispose() => through = null;
    }
}
