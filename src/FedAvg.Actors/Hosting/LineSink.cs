using System.Collections.Concurrent;

namespace FedAvg.Actors.Hosting;

/// <summary>
/// Lines handed, in order, to a writer on a thread of its own. A node's progress lines come from its ClientHost and
/// its clients, actors on the default dispatcher (the thread pool): a console that blocks (a full pipe nobody reads,
/// a terminal paused with Ctrl-S) held them inside Console.WriteLine, and with them the node's rounds. The server's
/// lines go through its observer actor on a dispatcher of its own for the same reason.
/// </summary>
sealed class LineSink : IDisposable
{
    /// <summary>How long Dispose waits for the lines still queued: a console that never takes them must not hold the exit.</summary>
    static readonly TimeSpan DrainLimit = TimeSpan.FromSeconds(5);

    readonly BlockingCollection<string> lines = new();
    readonly Thread writer;

    public LineSink(Action<string> write, string name)
    {
        writer = new Thread(() =>
        {
            foreach (var line in lines.GetConsumingEnumerable())
            {
                try
                {
                    write(line);
                }
                catch (Exception)
                {
                    // a closed standard output (the pipe's reader exited) loses the line, not the node
                }
            }
        }) { IsBackground = true, Name = name };
        writer.Start();
    }

    /// <summary>Queues <paramref name="line"/>; it never waits for the writer. After <see cref="Dispose"/>, dropped.</summary>
    public void Write(string line)
    {
        try
        {
            lines.Add(line);
        }
        catch (InvalidOperationException)
        {
            // the run has ended: a late line from a client that is stopping
        }
    }

    /// <summary>Writes what is queued (for up to <see cref="DrainLimit"/>), then stops the writer.</summary>
    public void Dispose()
    {
        lines.CompleteAdding();
        writer.Join(DrainLimit);
    }
}
