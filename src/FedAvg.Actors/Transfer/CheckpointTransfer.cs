using System.IO.Hashing;
using Akka.Streams;
using Akka.Streams.Dsl;
using FedAvg.Actors.Messages;

namespace FedAvg.Actors.Transfer;

/// <summary>
/// Moves a checkpoint file to a standby server: its bytes as chunks of <see cref="WeightStream.ChunkBytes"/> through an
/// Akka.Streams stream ref, as weight vectors move between nodes without a channel, so that no message is near the
/// remote frame, and an XxHash3 over the bytes that the receiver checks before it keeps them.
/// </summary>
public static class CheckpointTransfer
{
    /// <summary>The largest checkpoint a standby takes (1 GiB): a model of 85 M weights with FedAdam's two moments.</summary>
    public const long MaxBytes = 1L << 30;

    /// <summary>A checkpoint file cut into chunks, with its length and checksum: made once per round, off the actor, and
    /// streamed to every standby from the same immutable chunks.</summary>
    public sealed record Chunked(int Round, long Length, ulong Checksum, IReadOnlyList<byte[]> Chunks);

    /// <summary>Cuts <paramref name="bytes"/> (the checkpoint after <paramref name="round"/>) into chunks of at most
    /// <see cref="WeightStream.ChunkBytes"/>, hashing each as it is copied, while it is in cache.</summary>
    public static Chunked Chunk(int round, ReadOnlySpan<byte> bytes)
    {
        var chunks = new byte[(bytes.Length + WeightStream.ChunkBytes - 1) / WeightStream.ChunkBytes][];
        var hash = new XxHash3();
        for (int i = 0, offset = 0; i < chunks.Length; i++, offset += WeightStream.ChunkBytes)
        {
            chunks[i] = bytes.Slice(offset, Math.Min(WeightStream.ChunkBytes, bytes.Length - offset)).ToArray();
            hash.Append(chunks[i]);
        }
        return new Chunked(round, bytes.Length, hash.GetCurrentHashAsUInt64(), chunks);
    }

    /// <summary>A replica of a chunked checkpoint for one standby: its stream ref can be pulled once.</summary>
    public static async Task<CheckpointReplica> Offer(Chunked checkpoint, IMaterializer materializer)
    {
        var source = await Source.From(checkpoint.Chunks).RunWith(StreamRefs.SourceRef<byte[]>(), materializer).ConfigureAwait(false);
        return new CheckpointReplica(checkpoint.Round, checkpoint.Length, checkpoint.Checksum, source);
    }

    /// <summary>A replica of <paramref name="bytes"/> (a checkpoint of round <paramref name="round"/>) for one standby.</summary>
    public static Task<CheckpointReplica> Offer(int round, byte[] bytes, IMaterializer materializer) => Offer(Chunk(round, bytes), materializer);

    /// <summary>
    /// The replica's bytes, checked against its length and checksum; a <see cref="WeightTransferException"/> says what
    /// was wrong. <paramref name="cancel"/> aborts the pull (the sender is lost, or it took too long): a stream ref whose
    /// far end vanished mid-stream does not always fail by itself, and a standby must not wait on it forever.
    /// </summary>
    public static async Task<byte[]> Receive(CheckpointReplica replica, IMaterializer materializer, CancellationToken cancel = default)
    {
        if (replica.Length is < 1 or > MaxBytes) throw new WeightTransferException($"a checkpoint of {replica.Length} bytes (at most {MaxBytes})");
        var bytes = GC.AllocateUninitializedArray<byte>((int)replica.Length);
        long received = 0;
        try
        {
            var (kill, done) = replica.Chunks.Source.ViaMaterialized(KillSwitches.Single<byte[]>(), Keep.Right)
                .ToMaterialized(Sink.ForEach<byte[]>(chunk =>
                {
                    if (chunk.Length == 0 || chunk.Length > WeightStream.ChunkBytes)
                        throw new WeightTransferException($"a chunk of {chunk.Length} bytes (at most {WeightStream.ChunkBytes})");
                    if (received + chunk.Length > replica.Length)
                        throw new WeightTransferException($"more than the {replica.Length} bytes the replica announced");
                    chunk.CopyTo(bytes.AsSpan((int)received));
                    received += chunk.Length;
                }), Keep.Both)
                .Run(materializer);
            using (cancel.Register(() => kill.Abort(new OperationCanceledException("the pull was given up"))))
                await done.ConfigureAwait(false);
        }
        catch (Exception e) when (e is not WeightTransferException)
        {
            throw new WeightTransferException($"the stream failed after {received} of {replica.Length} bytes: {e.GetBaseException().Message}", e);
        }
        cancel.ThrowIfCancellationRequested();
        if (received != replica.Length) throw new WeightTransferException($"the stream ended after {received} of {replica.Length} bytes");
        if (XxHash3.HashToUInt64(bytes) != replica.Checksum) throw new WeightTransferException("checksum mismatch: the checkpoint was damaged in transit");
        return bytes;
    }
}
