using System.Runtime.InteropServices;
using TorchSharp;

namespace FedAvg.Core.Native;

/// <summary>
/// Process-wide settings that make libtorch run at its own speed inside .NET. Each host (`fedavg simulate`,
/// `server`, `node`, `centralized`, `bench`, and the test assemblies) calls <see cref="Apply"/> once at start-up,
/// before the first model exists; the trainer pool refuses to start in a process that did not.
/// </summary>
/// <remarks>
/// Under glibc's default thresholds every training step maps and unmaps its large buffers
/// (im2col, activations, gradients) and the time goes to the kernel: measured here, CNN training
/// ran ≈3.7× slower. Raising the mmap threshold to glibc's maximum and the trim threshold far above
/// it keeps those buffers on the heap between steps. Setting them through mallopt from inside the
/// process is equivalent to GLIBC_TUNABLES set before it starts, and needs nothing from the user.
/// </remarks>
public static class NativeTuning
{
    const int M_TRIM_THRESHOLD = -1;
    const int M_MMAP_THRESHOLD = -3;

    /// <summary>glibc's upper bound for the mmap threshold on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX).</summary>
    public const int MmapThresholdBytes = 32 * 1024 * 1024;
    public const int TrimThresholdBytes = 1024 * 1024 * 1024;

    static readonly object Gate = new();
    static bool applied;

    /// <summary>The switches this process runs with (read from the environment by the first <see cref="Apply"/>).</summary>
    public static NativeSettings Settings { get; private set; } = NativeSettings.Default;

    /// <summary>True when the malloc thresholds were raised in this process (false off glibc, or when disabled).</summary>
    public static bool MallocTuned { get; private set; }

    [DllImport("libc", EntryPoint = "mallopt")]
    static extern int Mallopt(int param, int value);

    /// <summary>
    /// Applies the malloc thresholds and MKL's kernel choice (<see cref="MklDispatch"/>) once per process, before the
    /// first model exists. Set FEDAVG_MALLOC_TUNING=off to measure without the thresholds.
    /// </summary>
    public static void Apply()
    {
        var settings = NativeSettings.FromEnvironment(); // a bad value is refused at every call, not only the first
        lock (Gate)
        {
            if (applied) return;
            applied = true;
            Settings = settings;
            MklDispatch.Apply(settings.MklByCpuFeatures);
            if (!OperatingSystem.IsLinux()) return;
            if (!settings.MallocTuning) return;
            try
            {
                MallocTuned = Mallopt(M_MMAP_THRESHOLD, MmapThresholdBytes) == 1
                              & Mallopt(M_TRIM_THRESHOLD, TrimThresholdBytes) == 1;
            }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
            {
                MallocTuned = false; // not glibc (musl, macOS): nothing to tune
            }
        }
    }

    /// <summary>True once <see cref="Apply"/> ran in this process.</summary>
    public static bool Applied
    {
        get
        {
            lock (Gate) return applied;
        }
    }

    /// <summary>Throws unless the host applied the settings: MKL chooses its kernels at the first product, once.</summary>
    public static void RequireApplied(string who)
    {
        if (!Applied)
            throw new InvalidOperationException($"{who}: the host must call FedAvg.Core.Native.NativeTuning.Apply() at start-up, before any model exists.");
    }

    /// <summary>
    /// Sets libtorch's intra-op thread count for the calling thread (OpenMP keeps it per thread). With more than one,
    /// MKL's GEMMs stay on one thread unless FEDAVG_BLAS_THREADS=intra-op: the models' matrices are small (batch ×
    /// a few hundred), and splitting them costs more than it gains: at two threads seed001-2nn B=32 ran 1.14–1.21×
    /// faster this way, B=64 the same, seed002-cnn 1.00–1.14× (docs/benchmark-notes.md). It is also how the PyTorch
    /// reference runs (OPENBLAS_NUM_THREADS=1).
    /// </summary>
    public static void SetIntraOpThreads(int threads)
    {
        Require.AtLeast(threads, 1, "threads");
        RequireApplied("SetIntraOpThreads");
        torch.set_num_threads(threads);
        // libtorch initialises each thread's setting lazily on first use, which would undo the BLAS choice below.
        _ = torch.get_num_threads();
        if (threads > 1 && Settings.SingleThreadedBlas)
            SingleThreadedBlasOnThisThread();
    }

    /// <summary>True once MKL was told to use one thread on some trainer thread (false where libtorch has no MKL).</summary>
    public static bool BlasSingleThreaded { get; private set; }

    static unsafe void SingleThreadedBlasOnThisThread()
    {
        // libtorch_cpu links MKL statically and exports its per-thread setting. The C entry point takes the count by
        // value (the lowercase symbol is Fortran's, by reference). libtorch is loaded by now, so found by soname.
        if (NativeLibrary.TryLoad("libtorch_cpu.so", out var libtorch)
            && NativeLibrary.TryGetExport(libtorch, "MKL_Set_Num_Threads_Local", out var setLocal))
        {
            ((delegate* unmanaged<int, int>)setLocal)(1);
            BlasSingleThreaded = true;
        }
    }
}
