using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;

namespace FedAvg.Core.Native;

/// <summary>
/// Runs a loop on libtorch's own OpenMP team, so that a kernel of ours uses the intra-op threads libtorch already
/// has (spinning between its operators) instead of waking .NET pool threads that would compete with them.
/// </summary>
/// <remarks>
/// Measured on <c>ReluMaxPool2d</c> at two intra-op threads: a <c>Parallel.For</c> split ran no faster than one
/// thread, because libtorch's idle OpenMP worker keeps spinning on the other core. libtorch is linked against the GNU
/// OpenMP runtime, which TorchSharp ships beside it (libgomp-&lt;hash&gt;.so.1); it is found among the process's
/// mapped libraries once libtorch is loaded. Where it cannot be found, loops run on the calling thread.
/// </remarks>
public static unsafe class OpenMpTeam
{
    static readonly delegate* unmanaged<delegate* unmanaged<nint, void>, nint, uint, uint, void> Parallel;
    static readonly delegate* unmanaged<int> ThreadNumber;
    static readonly delegate* unmanaged<int> TeamSize;

    /// <summary>The GNU OpenMP runtime in use, or null when loops run on the calling thread only.</summary>
    public static string? Library { get; }

    static OpenMpTeam()
    {
        if (!OperatingSystem.IsLinux()) return;
        _ = TorchSharp.torch.get_num_threads(); // loads libtorch, and with it its OpenMP runtime
        var path = ProcessMaps.Read() // without /proc, none: loops stay on the calling thread
            .Select(m => m.Path)
            .FirstOrDefault(p => Path.GetFileName(p).StartsWith("libgomp", StringComparison.Ordinal));
        if (path is null || !NativeLibrary.TryLoad(path, out var gomp)) return;
        if (!NativeLibrary.TryGetExport(gomp, "GOMP_parallel", out var parallel)
            || !NativeLibrary.TryGetExport(gomp, "omp_get_thread_num", out var threadNumber)
            || !NativeLibrary.TryGetExport(gomp, "omp_get_num_threads", out var teamSize)) return;
        Parallel = (delegate* unmanaged<delegate* unmanaged<nint, void>, nint, uint, uint, void>)parallel;
        ThreadNumber = (delegate* unmanaged<int>)threadNumber;
        TeamSize = (delegate* unmanaged<int>)teamSize;
        Library = path;
    }

    /// <summary>
    /// Calls <paramref name="body"/>(first, end) over [0, <paramref name="count"/>) split into contiguous ranges, one per
    /// thread of a team of <paramref name="threads"/>; returns when all are done. Exceptions are rethrown here.
    /// </summary>
    public static void For(int count, int threads, Action<int, int> body)
    {
        if (threads <= 1 || count < 2 || Library is null)
        {
            body(0, count);
            return;
        }
        var job = new Job(count, body);
        var handle = GCHandle.Alloc(job);
        try
        {
            Parallel(&RunSlice, GCHandle.ToIntPtr(handle), (uint)Math.Min(threads, count), 0);
        }
        finally
        {
            handle.Free();
        }
        if (job.Failure is not null) ExceptionDispatchInfo.Throw(job.Failure);
    }

    sealed class Job(int count, Action<int, int> body)
    {
        public readonly int Count = count;
        public readonly Action<int, int> Body = body;
        public Exception? Failure;
    }

    [UnmanagedCallersOnly]
    static void RunSlice(nint state)
    {
        var job = (Job)GCHandle.FromIntPtr(state).Target!;
        try
        {
            int thread = ThreadNumber(), team = TeamSize();
            int first = (int)((long)job.Count * thread / team), end = (int)((long)job.Count * (thread + 1) / team);
            if (first < end) job.Body(first, end);
        }
        catch (Exception e)
        {
            Interlocked.CompareExchange(ref job.Failure, e, null);
        }
    }
}
